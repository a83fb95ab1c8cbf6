//! Lambda function `calendar_event`: `GET /calendar/{user_id}/events/{event_id}`.

use celeriac_calendar::http::{event, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_event", event).await
}
