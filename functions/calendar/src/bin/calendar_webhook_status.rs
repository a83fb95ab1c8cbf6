//! Lambda function `calendar_webhook_status`: `GET /webhook/status/{user_id}`.

use celeriac_calendar::http::{run_lambda_endpoint, webhook_status};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_webhook_status", webhook_status).await
}
