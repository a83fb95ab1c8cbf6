//! Lambda function `process_conversation_ai`: a conversation's summary, action items and
//! keywords, from its three queues (`recall-ai-high`, `recall-ai`, `recall-ai-low`).

use celeriac_recall::RecallBackend;
use celeriac_recall::tasks::ProcessConversationAi;
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (backend, _) = RecallBackend::from_env("process_conversation_ai").await?;
    let registry = Registry::new().register(ProcessConversationAi(backend));
    run_sqs_function("process_conversation_ai", registry).await
}
