//! Lambda function `conversation_create`: `POST /api/conversations/`, stored now and
//! analysed by `process_conversation_ai` at the asked priority.

use celeriac_recall::http::{create, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("conversation_create", create, true).await
}
