//! Lambda function `user_logout`: `POST /api/v1/user/logout`.

use celeriac_shop::accounts::http::{logout, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_logout", logout).await
}
