//! Lambda function `user_me`: `GET /api/v1/user/me`.

use celeriac_shop::accounts::http::{me, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_me", me).await
}
