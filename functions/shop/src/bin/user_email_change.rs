//! Lambda function `user_email_change`: `POST /api/v1/user/email`.

use celeriac_shop::accounts::http::{email_change, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_email_change", email_change).await
}
