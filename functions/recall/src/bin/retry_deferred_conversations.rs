//! Lambda function `retry_deferred_conversations`: every 5 minutes, enqueues the
//! analyses that could not be enqueued when their conversations were created.

use celeriac_recall::RecallBackend;
use celeriac_recall::tasks::RetryDeferredConversations;
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (backend, client) = RecallBackend::from_env("retry_deferred_conversations").await?;
    let client = Some(client.ok_or("retry_deferred_conversations enqueues: set TASK_QUEUE_URL")?);
    let registry = Registry::new().register(RetryDeferredConversations { backend, client });
    run_scheduled_function("retry_deferred_conversations", registry).await
}
