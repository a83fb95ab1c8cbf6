//! Lambda function `generate_content_for_topic`: a topic's quote and article of the day, from its queue (`wellness-content`).

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::GenerateContentForTopic;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("generate_content_for_topic").await?;
    run_sqs_function(
        "generate_content_for_topic",
        Registry::new().register(GenerateContentForTopic(backend)),
    )
    .await
}
