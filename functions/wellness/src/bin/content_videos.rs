//! Lambda function `content_videos`: `GET /content/videos`.

use celeriac_wellness::http::{run_lambda_endpoint, videos};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("content_videos", videos).await
}
