//! Lambda function `calendar_events`: `GET /calendar/{user_id}/events`.

use celeriac_calendar::http::{events, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_events", events).await
}
