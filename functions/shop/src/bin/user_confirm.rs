//! Lambda function `user_confirm`: `POST /api/v1/user/confirm` (the mailed link's page posts here).

use celeriac_shop::accounts::http::{confirm, run_lambda_endpoint_without_mail};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint_without_mail("user_confirm", confirm).await
}
