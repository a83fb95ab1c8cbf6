//! The conversations port and its in-memory adapter; both pass
//! `tests/conversations_store.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How soon a conversation's analysis should run (the seed's Celery priorities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Celery priority 9: the `-high` queue.
    High,
    /// No priority: the queue itself.
    #[default]
    Default,
    /// Celery priority 1: the `-low` queue.
    Low,
}

impl Priority {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Default => "default",
            Self::Low => "low",
        }
    }

    /// The priority stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "high" => Some(Self::High),
            "default" => Some(Self::Default),
            "low" => Some(Self::Low),
            _ => None,
        }
    }

    /// The Celery priority the task is sent with (0 lowest, 9 highest), which the task
    /// runtime routes to `{queue}-high`, `{queue}` or `{queue}-low`.
    pub fn celery(self) -> Option<u8> {
        match self {
            Self::High => Some(9),
            Self::Default => None,
            Self::Low => Some(1),
        }
    }
}

/// A stored conversation with what the model made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id (the seed's URLs are `/api/conversations/1/`).
    pub id: i64,
    /// Whose it is (the session's user id).
    #[serde(skip)]
    pub owner_id: String,
    /// Optional title.
    pub title: Option<String>,
    /// The conversation.
    pub content: String,
    /// The seed's kind of post (`update`).
    pub post_type: String,
    /// How soon it is analysed.
    pub priority: Priority,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Whether the analysis is stored.
    pub ai_processed: bool,
    /// The model's summary.
    pub ai_summary: Option<String>,
    /// Things to do.
    pub ai_action_items: Vec<String>,
    /// Key words and phrases.
    pub ai_keywords: Vec<String>,
    /// Which model (or engine version) wrote them.
    pub ai_model: Option<String>,
    /// When they were stored.
    pub ai_processed_at: Option<DateTime<Utc>>,
    /// The analysis task could not be enqueued at creation; the retry schedule will.
    pub ai_enqueue_pending: bool,
    #[serde(skip)]
    pub(crate) ai_content_hash: Option<String>,
}

impl Conversation {
    /// Whether the stored analysis is of the current content.
    pub fn analysed(&self) -> bool {
        self.ai_processed && self.ai_content_hash.as_deref() == Some(&content_hash(&self.content))
    }
}

/// A conversation to store (validated by the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// Whose.
    pub owner_id: String,
    /// Optional title.
    pub title: Option<String>,
    /// The conversation.
    pub content: String,
    /// Kind of post.
    pub post_type: String,
    /// How soon it is analysed.
    pub priority: Priority,
}

/// The model's analysis, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiResult {
    /// Summary.
    pub summary: String,
    /// Action items.
    pub action_items: Vec<String>,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Model or engine version.
    pub model: String,
    /// [`content_hash`] of the content analysed.
    pub content_hash: String,
}

/// SHA-256 of a conversation's content, hex: what an analysis is of.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConversationError {
    /// The database is down or slow: retry.
    #[error("conversations store unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement: a bug or bad data.
    #[error("conversations store error: {0}")]
    Rejected(String),
}

impl ConversationError {
    /// Whether another attempt can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<ConversationError> for celeriac_platform::Error {
    fn from(err: ConversationError) -> Self {
        match err {
            ConversationError::Unavailable(reason) => Self::Unavailable {
                component: "database",
                reason,
            },
            ConversationError::Rejected(reason) => Self::internal(reason),
        }
    }
}

/// Where conversations live.
#[async_trait]
pub trait ConversationStore: Send + Sync + std::fmt::Debug {
    /// Stores a new conversation, not yet analysed.
    async fn create(&self, new: NewConversation) -> Result<Conversation, ConversationError>;

    /// The conversation `id`, whoever owns it.
    async fn get(&self, id: i64) -> Result<Option<Conversation>, ConversationError>;

    /// Stores `result` on conversation `id` unless an analysis of the same content is
    /// there already; true when this call stored it. One conditional write, so two
    /// deliveries of one task store once.
    async fn store_analysis(&self, id: i64, result: &AiResult) -> Result<bool, ConversationError>;

    /// Sets or clears the mark of a conversation whose analysis is not enqueued.
    async fn set_enqueue_pending(&self, id: i64, pending: bool) -> Result<(), ConversationError>;

    /// Up to `limit` conversations marked pending, oldest first.
    async fn enqueue_pending(&self, limit: usize) -> Result<Vec<Conversation>, ConversationError>;
}

/// The store handlers and tasks hold.
pub type SharedConversations = Arc<dyn ConversationStore>;

/// Conversations in memory: the embedded default.
#[derive(Debug, Default)]
pub struct MemoryConversations {
    rows: Mutex<BTreeMap<i64, Conversation>>,
}

impl MemoryConversations {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Conversation>> {
        // A panic while holding the lock cannot leave a row half-written (each change is
        // one insert), so the data is still good.
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ConversationStore for MemoryConversations {
    async fn create(&self, new: NewConversation) -> Result<Conversation, ConversationError> {
        let mut rows = self.rows();
        let id = rows.keys().next_back().map_or(1, |last| last + 1);
        let conversation = Conversation {
            id,
            owner_id: new.owner_id,
            title: new.title,
            content: new.content,
            post_type: new.post_type,
            priority: new.priority,
            created_at: Utc::now(),
            ai_processed: false,
            ai_summary: None,
            ai_action_items: Vec::new(),
            ai_keywords: Vec::new(),
            ai_model: None,
            ai_processed_at: None,
            ai_enqueue_pending: false,
            ai_content_hash: None,
        };
        rows.insert(id, conversation.clone());
        Ok(conversation)
    }

    async fn get(&self, id: i64) -> Result<Option<Conversation>, ConversationError> {
        Ok(self.rows().get(&id).cloned())
    }

    async fn store_analysis(&self, id: i64, result: &AiResult) -> Result<bool, ConversationError> {
        let mut rows = self.rows();
        let Some(row) = rows.get_mut(&id) else {
            return Ok(false);
        };
        if row.ai_processed && row.ai_content_hash.as_deref() == Some(&result.content_hash) {
            return Ok(false);
        }
        row.ai_processed = true;
        row.ai_summary = Some(result.summary.clone());
        row.ai_action_items = result.action_items.clone();
        row.ai_keywords = result.keywords.clone();
        row.ai_model = Some(result.model.clone());
        row.ai_content_hash = Some(result.content_hash.clone());
        row.ai_processed_at = Some(Utc::now());
        Ok(true)
    }

    async fn set_enqueue_pending(&self, id: i64, pending: bool) -> Result<(), ConversationError> {
        if let Some(row) = self.rows().get_mut(&id) {
            row.ai_enqueue_pending = pending;
        }
        Ok(())
    }

    async fn enqueue_pending(&self, limit: usize) -> Result<Vec<Conversation>, ConversationError> {
        Ok(self
            .rows()
            .values()
            .filter(|c| c.ai_enqueue_pending)
            .take(limit)
            .cloned()
            .collect())
    }
}
