//! Lambda function `conversation_show`: `GET /api/conversations/{id}/`, to its owner.

use celeriac_recall::http::{run_lambda_endpoint, show};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("conversation_show", show, false).await
}
