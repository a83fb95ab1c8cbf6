//! Lambda function `calendar_calendars`: `GET /calendar/{user_id}/calendars`.

use celeriac_calendar::http::{calendars, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_calendars", calendars).await
}
