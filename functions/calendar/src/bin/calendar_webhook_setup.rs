//! Lambda function `calendar_webhook_setup`: `POST /webhook/setup/{user_id}`.

use celeriac_calendar::http::{run_lambda_endpoint, webhook_setup};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_webhook_setup", webhook_setup).await
}
