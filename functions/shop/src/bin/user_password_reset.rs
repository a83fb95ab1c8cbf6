//! Lambda function `user_password_reset`: `POST /api/v1/user/password/reset`.

use celeriac_shop::accounts::http::{password_reset, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_password_reset", password_reset).await
}
