//! Lambda function `user_confirm_page`: `GET /api/v1/user/confirm?token=`.

use celeriac_shop::accounts::http::{confirm_page, run_lambda_page};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_page("user_confirm_page", confirm_page).await
}
