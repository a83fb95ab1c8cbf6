//! Lambda function `user_refresh`: `POST /api/v1/user/refresh`.

use celeriac_shop::accounts::http::{refresh, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_refresh", refresh).await
}
