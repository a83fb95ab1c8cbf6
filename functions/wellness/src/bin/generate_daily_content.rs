//! Lambda function `generate_daily_content`: the day's content for the popular topics, every hour.

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::GenerateDailyContent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("generate_daily_content").await?;
    run_scheduled_function(
        "generate_daily_content",
        Registry::new().register(GenerateDailyContent(backend)),
    )
    .await
}
