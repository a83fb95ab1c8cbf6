//! Lambda function `user_password_forgot`: `POST /api/v1/user/password/forgot`.

use celeriac_shop::accounts::http::{password_forgot, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_password_forgot", password_forgot).await
}
