//! Lambda function `calendar_disconnect`: `DELETE /calendar/{user_id}/connection`.

use celeriac_calendar::http::{disconnect, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("calendar_disconnect", disconnect).await
}
