//! Lambda function `content_articles`: `GET /content/articles`.

use celeriac_wellness::http::{articles, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("content_articles", articles).await
}
