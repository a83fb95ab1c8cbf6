//! Lambda function `batch_process_conversations`: several conversations' analyses, from
//! its queue (`recall-batch`).

use celeriac_recall::RecallBackend;
use celeriac_recall::tasks::BatchProcessConversations;
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (backend, _) = RecallBackend::from_env("batch_process_conversations").await?;
    let registry = Registry::new().register(BatchProcessConversations(backend));
    run_sqs_function("batch_process_conversations", registry).await
}
