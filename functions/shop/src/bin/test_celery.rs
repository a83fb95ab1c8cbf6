//! Lambda function `test_celery`: runs the shop's queue check task from `main-queue`.

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_sqs_function(
        "test_celery",
        Registry::new().register(celeriac_shop::tasks::TestCelery),
    )
    .await
}
