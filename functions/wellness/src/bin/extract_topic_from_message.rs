//! Lambda function `extract_topic_from_message`: the user's topic after each chat message, from its queue (`wellness-topics`).

use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::tasks::ExtractTopicFromMessage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let backend = WellnessBackend::from_env("extract_topic_from_message").await?;
    run_sqs_function(
        "extract_topic_from_message",
        Registry::new().register(ExtractTopicFromMessage(backend)),
    )
    .await
}
