//! Lambda function `send_email`: sends the shop's emails from its queue (`celery`).

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let mail = celeriac_mail::SendEmail::from_env().await?;
    run_sqs_function("send_email", Registry::new().register(mail)).await
}
