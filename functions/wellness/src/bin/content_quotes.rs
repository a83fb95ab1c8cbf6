//! Lambda function `content_quotes`: `GET /content/quotes`.

use celeriac_wellness::http::{quotes, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("content_quotes", quotes).await
}
