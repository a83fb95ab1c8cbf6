//! Lambda function `user_registration_resend`: `POST /api/v1/user/registration/resend`.

use celeriac_shop::accounts::http::{registration_resend, run_lambda_endpoint};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_lambda_endpoint("user_registration_resend", registration_resend).await
}
