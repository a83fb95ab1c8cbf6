//! Lambda function `calendar_webhook_unsubscribe`: `DELETE /webhook/unsubscribe/{channel_id}`.

use celeriac_calendar::http::{run_lambda_endpoint, webhook_unsubscribe};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_webhook_unsubscribe", webhook_unsubscribe).await
}
