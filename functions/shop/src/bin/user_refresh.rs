//! Lambda function `user_refresh`: `POST /api/v1/user/refresh`.

use celeriac_shop::accounts::http::{refresh, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_refresh", refresh).await
}
