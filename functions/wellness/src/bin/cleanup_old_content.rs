//! Lambda function `cleanup_old_content`: drops past days' content entries, every day.

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::CleanupOldContent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("cleanup_old_content").await?;
    run_scheduled_function(
        "cleanup_old_content",
        Registry::new().register(CleanupOldContent(backend)),
    )
    .await
}
