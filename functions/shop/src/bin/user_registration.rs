//! Lambda function `user_registration`: `POST /api/v1/user/registration`.

use celeriac_shop::accounts::http::{registration, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_registration", registration).await
}
