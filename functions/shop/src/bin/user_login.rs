//! Lambda function `user_login`: `POST /api/v1/user/login`.

use celeriac_shop::accounts::http::{login, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_login", login).await
}
