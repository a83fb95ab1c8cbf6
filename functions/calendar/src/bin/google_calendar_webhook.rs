//! Lambda function `google_calendar_webhook`: `POST /webhook/google-calendar`.

use celeriac_calendar::http::{google_webhook, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("google_calendar_webhook", google_webhook).await
}
