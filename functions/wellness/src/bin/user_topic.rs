//! Lambda function `user_topic`: `GET /user/{user_id}/topic`.

use celeriac_wellness::http::{run_lambda_endpoint, user_topic};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_topic", user_topic).await
}
