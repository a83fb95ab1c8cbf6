//! Lambda function `calendar_connect`: `GET /calendar/{user_id}/connect`.

use celeriac_calendar::http::{connect, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_connect", connect).await
}
