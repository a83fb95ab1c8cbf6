//! Lambda function `calendar_oauth_callback`: `GET /oauth/google-calendar/callback`.

use celeriac_calendar::http::{oauth_callback, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_oauth_callback", oauth_callback).await
}
