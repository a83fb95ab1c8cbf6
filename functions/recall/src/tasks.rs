//! The recall tasks, under the seed's names.
//!
//! | task | queue / trigger | does |
//! |---|---|---|
//! | `process_conversation_ai` | `recall-ai-high`, `recall-ai`, `recall-ai-low` | summary, action items, keywords stored |
//! | `batch_process_conversations` | `recall-batch` | the same for several conversations |
//! | `retry_deferred_conversations` | every 5 minutes | enqueues what could not be enqueued at creation |

use std::time::Duration;

use async_trait::async_trait;
use celeriac_tasks::{Registry, SendOptions, Task, TaskClient, TaskContext, TaskError, TaskSpec};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::RecallBackend;
use crate::store::{AiResult, Conversation, ConversationError, content_hash};

/// Queue of `process_conversation_ai`; priorities go to `-high` and `-low` beside it.
pub const AI_QUEUE: &str = "recall-ai";
/// Queue of `batch_process_conversations`.
pub const BATCH_QUEUE: &str = "recall-batch";
/// Conversations one batch may name.
pub const MAX_BATCH: usize = 100;
/// Conversations of one batch analysed at once: a few, so a batch does not trip the
/// model's rate limits on its own.
const BATCH_CONCURRENCY: usize = 4;
/// Deferred conversations one schedule run enqueues; the next run takes the rest.
const RETRY_LIMIT: usize = 500;

/// `process_conversation_ai`'s name, queues and policy.
pub const PROCESS_CONVERSATION_AI: TaskSpec = TaskSpec::new("process_conversation_ai")
    .queue(AI_QUEUE)
    .with_priority_queues()
    .time_limit(Duration::from_secs(120));

fn store_failed(err: ConversationError) -> TaskError {
    TaskError::classify(&err, err.is_retryable())
}

/// Adds the recall tasks to `registry`; the retry schedule enqueues with `client`.
pub fn register(
    backend: &RecallBackend,
    client: Option<TaskClient>,
    registry: Registry,
) -> Registry {
    registry
        .register(ProcessConversationAi(backend.clone()))
        .register(BatchProcessConversations(backend.clone()))
        .register(RetryDeferredConversations {
            backend: backend.clone(),
            client,
        })
}

/// Arguments of `process_conversation_ai`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationArgs {
    /// Which conversation.
    pub conversation_id: i64,
}

/// What one analysis did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    /// Which conversation.
    pub conversation_id: i64,
    /// False when an analysis of the same content was stored already (a duplicate
    /// delivery): nothing was asked of the model and nothing written.
    pub stored: bool,
    /// Action items stored.
    pub action_items: usize,
    /// Keywords stored.
    pub keywords: usize,
}

impl RecallBackend {
    /// Analyses conversation `id` and stores the result, once per content.
    pub async fn process(&self, id: i64) -> Result<Processed, TaskError> {
        let conversation: Conversation = self
            .store
            .get(id)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| TaskError::Permanent(format!("no conversation {id}")))?;
        if conversation.analysed() {
            return Ok(Processed {
                conversation_id: id,
                stored: false,
                action_items: conversation.ai_action_items.len(),
                keywords: conversation.ai_keywords.len(),
            });
        }
        // An unusable answer fails here, before anything is written.
        let analysis = self
            .llm
            .analyse_conversation(&conversation.content)
            .await
            .map_err(|e| TaskError::classify(&e, e.is_retryable()))?;
        let result = AiResult {
            summary: analysis.summary,
            action_items: analysis.action_items,
            keywords: analysis.keywords,
            model: self.llm.model().to_owned(),
            content_hash: content_hash(&conversation.content),
        };
        let stored = self
            .store
            .store_analysis(id, &result)
            .await
            .map_err(store_failed)?;
        tracing::info!(
            conversation_id = id,
            stored,
            action_items = result.action_items.len(),
            "conversation analysed"
        );
        Ok(Processed {
            conversation_id: id,
            stored,
            action_items: result.action_items.len(),
            keywords: result.keywords.len(),
        })
    }
}

/// `process_conversation_ai(conversation_id)`.
#[derive(Debug, Clone)]
pub struct ProcessConversationAi(pub RecallBackend);

#[async_trait]
impl Task for ProcessConversationAi {
    type Args = ConversationArgs;
    type Output = Processed;

    fn spec(&self) -> TaskSpec {
        PROCESS_CONVERSATION_AI
    }

    async fn run(
        &self,
        args: ConversationArgs,
        _ctx: &TaskContext,
    ) -> Result<Processed, TaskError> {
        self.0.process(args.conversation_id).await
    }
}

/// Arguments of `batch_process_conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchArgs {
    /// Which conversations.
    pub conversation_ids: Vec<i64>,
}

/// One conversation's outcome in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// Which conversation.
    pub conversation_id: i64,
    /// `processed`, `already_processed` or `failed`.
    pub outcome: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `batch_process_conversations(conversation_ids)`: the seed's batch, processed inline
/// (a few at a time) rather than fanned out, so one task reports every outcome. A
/// conversation that fails for good is reported and the others go on; one that failed
/// for a passing reason fails the batch for a retry, in which the conversations already
/// stored are skipped without a model call. On the last attempt a passing failure is
/// reported like any other: failing the batch then would send it to the dead letters
/// and lose the outcomes of the conversations that did succeed.
#[derive(Debug, Clone)]
pub struct BatchProcessConversations(pub RecallBackend);

#[async_trait]
impl Task for BatchProcessConversations {
    type Args = BatchArgs;
    type Output = Vec<BatchItem>;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("batch_process_conversations")
            .queue(BATCH_QUEUE)
            .time_limit(Duration::from_secs(600))
    }

    async fn run(&self, args: BatchArgs, ctx: &TaskContext) -> Result<Vec<BatchItem>, TaskError> {
        if args.conversation_ids.is_empty() || args.conversation_ids.len() > MAX_BATCH {
            return Err(TaskError::Permanent(format!(
                "conversation_ids: 1 to {MAX_BATCH} ids"
            )));
        }
        let outcomes: Vec<(i64, Result<Processed, TaskError>)> =
            futures::stream::iter(args.conversation_ids)
                .map(|id| async move { (id, self.0.process(id).await) })
                .buffered(BATCH_CONCURRENCY)
                .collect()
                .await;
        let last_attempt = ctx.retries >= self.spec().max_retries;
        if !last_attempt
            && let Some((id, Err(err))) = outcomes
                .iter()
                .find(|(_, outcome)| matches!(outcome, Err(e) if e.is_retryable()))
        {
            return Err(TaskError::Retryable(format!("conversation {id}: {err}")));
        }
        Ok(outcomes
            .into_iter()
            .map(|(id, outcome)| match outcome {
                Ok(p) => BatchItem {
                    conversation_id: id,
                    outcome: if p.stored {
                        "processed"
                    } else {
                        "already_processed"
                    }
                    .into(),
                    error: None,
                },
                Err(err) => BatchItem {
                    conversation_id: id,
                    outcome: "failed".into(),
                    error: Some(err.to_string()),
                },
            })
            .collect())
    }
}

/// What a retry run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryReport {
    /// Conversations enqueued now.
    pub enqueued: Vec<i64>,
    /// Conversations still deferred (the queue is still down).
    pub still_deferred: usize,
}

/// Arguments of the schedule: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `retry_deferred_conversations`: every 5 minutes, enqueues the analysis of every
/// conversation whose enqueue failed at creation, and clears its mark.
#[derive(Debug, Clone)]
pub struct RetryDeferredConversations {
    /// Store and model.
    pub backend: RecallBackend,
    /// Where analyses are enqueued; without one the schedule fails, naming what to set.
    pub client: Option<TaskClient>,
}

impl RecallBackend {
    /// Enqueues the analysis of `conversation` at its priority; the task id.
    pub async fn enqueue(
        &self,
        client: &TaskClient,
        conversation: &Conversation,
    ) -> Result<String, TaskError> {
        let args = serde_json::json!(ConversationArgs {
            conversation_id: conversation.id,
        });
        // The analysis is the conversation owner's to read, also when the retry schedule
        // is the one that enqueues it.
        let options = SendOptions {
            priority: conversation.priority.celery(),
            owner: Some(conversation.owner_id.clone()),
            ..SendOptions::default()
        };
        client.send(&PROCESS_CONVERSATION_AI, args, options).await
    }
}

#[async_trait]
impl Task for RetryDeferredConversations {
    type Args = NoArgs;
    type Output = RetryReport;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("retry_deferred_conversations").time_limit(Duration::from_secs(120))
    }

    async fn run(&self, _args: NoArgs, _ctx: &TaskContext) -> Result<RetryReport, TaskError> {
        let backend = &self.backend;
        let client = self.client.as_ref().ok_or_else(|| {
            TaskError::Permanent(
                "retry_deferred_conversations has no queue to enqueue on: set TASK_QUEUE_URL or TASK_TRANSPORT=redis"
                    .into(),
            )
        })?;
        let pending = backend
            .store
            .enqueue_pending(RETRY_LIMIT)
            .await
            .map_err(store_failed)?;
        let mut report = RetryReport::default();
        for conversation in &pending {
            match backend.enqueue(client, conversation).await {
                // Cleared only after the send: a crash between the two enqueues twice,
                // which the task's content-hash check makes harmless.
                Ok(_) => {
                    backend
                        .store
                        .set_enqueue_pending(conversation.id, false)
                        .await
                        .map_err(store_failed)?;
                    report.enqueued.push(conversation.id);
                }
                Err(err) => {
                    tracing::warn!(conversation_id = conversation.id, error = %err, "still cannot enqueue; left for the next run");
                    report.still_deferred += 1;
                }
            }
        }
        Ok(report)
    }
}
