//! Lambda function `update_popular_topics`: the ranking of the week's topics, every 30 minutes.

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::UpdatePopularTopics;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("update_popular_topics").await?;
    run_scheduled_function(
        "update_popular_topics",
        Registry::new().register(UpdatePopularTopics(backend)),
    )
    .await
}
