//! Lambda function `user_password_reset_page`: `GET /api/v1/user/password/reset?token=`.

use celeriac_shop::accounts::http::{password_reset_page, run_lambda_page};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_page("user_password_reset_page", password_reset_page).await
}
