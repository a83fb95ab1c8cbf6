//! Conversation recall (seed 004): a user stores a conversation, and the model's summary,
//! action items and keywords are added to it off the request path.
//!
//! - [`store`]: the `ConversationStore` port and its in-memory adapter;
//!   [`postgres`]: the PostgreSQL adapter;
//! - [`http`]: `POST /api/conversations/` and `GET /api/conversations/{id}/`, one router
//!   each (Bearer session from the accounts);
//! - [`tasks`]: `process_conversation_ai` on high, default and low priority queues,
//!   `batch_process_conversations`, and the `retry_deferred_conversations` schedule.
//!
//! `GET /api/health/` (the platform's) covers database, redis, llm and queue.

pub mod http;
pub mod postgres;
pub mod store;
pub mod tasks;

use std::sync::Arc;

use anyhow::Context;
use celeriac_llm::SharedLlm;
use celeriac_platform_functions::{Adapters, Database, Defaults};

use crate::store::{MemoryConversations, SharedConversations};

/// What the recall endpoints and tasks share: the conversations and the model.
#[derive(Debug, Clone)]
pub struct RecallBackend {
    /// Conversations.
    pub store: SharedConversations,
    /// The language model (answers cached by content hash).
    pub llm: SharedLlm,
}

impl RecallBackend {
    /// The backend over a deployment's adapters: PostgreSQL (or memory under the dev
    /// runner) and the configured model.
    pub fn open(adapters: &Adapters) -> anyhow::Result<Self> {
        let store: SharedConversations = match &adapters.database {
            Some(Database::Postgres(pool)) => {
                Arc::new(postgres::PgConversations::new(pool.clone()))
            }
            Some(Database::Memory) => Arc::new(MemoryConversations::new()),
            None => {
                anyhow::bail!("recall needs a database: set DATABASE_URL or DATABASE_SECRET_ARN")
            }
        };
        let llm = adapters
            .llm
            .clone()
            .context("recall needs a language model: set LLM_PROVIDER to bedrock or local")?;
        Ok(Self { store, llm })
    }

    /// The backend of a Lambda function, from the environment; with the task client
    /// when a queue is configured.
    pub async fn from_env(
        service: &str,
    ) -> anyhow::Result<(Self, Option<celeriac_tasks::TaskClient>)> {
        let config = celeriac_platform::Config::from_env(service)?;
        let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
        let client = adapters.task_client(&config, service);
        Ok((Self::open(&adapters)?, client))
    }
}
