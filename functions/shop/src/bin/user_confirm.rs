//! Lambda function `user_confirm`: `GET /api/v1/user/confirm?token=`.

use celeriac_shop::accounts::http::{confirm, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_confirm", confirm).await
}
