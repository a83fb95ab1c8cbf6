//! The conversations port on PostgreSQL (`shared/db/migrations/0005_recall.sql`).
//!
//! Storing an analysis is one `UPDATE ... WHERE NOT (ai_processed AND ai_content_hash =
//! $hash)`: of two deliveries racing, the row lock makes the second see the first's
//! write and match nothing.

use async_trait::async_trait;
use celeriac_db::PgPool;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::store::{
    AiResult, Conversation, ConversationError, ConversationStore, NewConversation, Priority,
};

/// Conversations in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgConversations {
    pool: PgPool,
}

impl PgConversations {
    /// Conversations in `pool`'s database (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Every column, in one place (a macro, because sqlx wants static SQL and `concat!`
/// takes only literals and macros).
macro_rules! columns {
    () => {
        "id, owner_id, title, content, post_type, priority, created_at, ai_processed, \
         ai_summary, ai_action_items, ai_keywords, ai_model, ai_content_hash, \
         ai_processed_at, ai_enqueue_pending"
    };
}

fn failed(err: sqlx::Error) -> ConversationError {
    if celeriac_db::is_transient(&err) {
        ConversationError::Unavailable(err.to_string())
    } else {
        ConversationError::Rejected(err.to_string())
    }
}

fn conversation(row: &PgRow) -> Result<Conversation, ConversationError> {
    let priority: String = row.try_get("priority").map_err(failed)?;
    let list = |column: &str| -> Result<Vec<String>, ConversationError> {
        let value: serde_json::Value = row.try_get(column).map_err(failed)?;
        serde_json::from_value(value)
            .map_err(|e| ConversationError::Rejected(format!("{column}: {e}")))
    };
    Ok(Conversation {
        id: row.try_get("id").map_err(failed)?,
        owner_id: row.try_get("owner_id").map_err(failed)?,
        title: row.try_get("title").map_err(failed)?,
        content: row.try_get("content").map_err(failed)?,
        post_type: row.try_get("post_type").map_err(failed)?,
        priority: Priority::parse(&priority)
            .ok_or_else(|| ConversationError::Rejected(format!("priority {priority:?}")))?,
        created_at: row.try_get("created_at").map_err(failed)?,
        ai_processed: row.try_get("ai_processed").map_err(failed)?,
        ai_summary: row.try_get("ai_summary").map_err(failed)?,
        ai_action_items: list("ai_action_items")?,
        ai_keywords: list("ai_keywords")?,
        ai_model: row.try_get("ai_model").map_err(failed)?,
        ai_content_hash: row.try_get("ai_content_hash").map_err(failed)?,
        ai_processed_at: row.try_get("ai_processed_at").map_err(failed)?,
        ai_enqueue_pending: row.try_get("ai_enqueue_pending").map_err(failed)?,
    })
}

#[async_trait]
impl ConversationStore for PgConversations {
    async fn create(&self, new: NewConversation) -> Result<Conversation, ConversationError> {
        let row = sqlx::query(concat!(
            "INSERT INTO recall_conversations (owner_id, title, content, post_type, priority) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            columns!()
        ))
        .bind(&new.owner_id)
        .bind(&new.title)
        .bind(&new.content)
        .bind(&new.post_type)
        .bind(new.priority.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(failed)?;
        conversation(&row)
    }

    async fn get(&self, id: i64) -> Result<Option<Conversation>, ConversationError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recall_conversations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(conversation).transpose()
    }

    async fn store_analysis(&self, id: i64, result: &AiResult) -> Result<bool, ConversationError> {
        let stored = sqlx::query(
            "UPDATE recall_conversations SET ai_processed = true, ai_summary = $2, \
             ai_action_items = $3, ai_keywords = $4, ai_model = $5, ai_content_hash = $6, \
             ai_processed_at = now() \
             WHERE id = $1 AND NOT (ai_processed AND ai_content_hash IS NOT DISTINCT FROM $6)",
        )
        .bind(id)
        .bind(&result.summary)
        .bind(serde_json::json!(result.action_items))
        .bind(serde_json::json!(result.keywords))
        .bind(&result.model)
        .bind(&result.content_hash)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(stored.rows_affected() == 1)
    }

    async fn set_enqueue_pending(&self, id: i64, pending: bool) -> Result<(), ConversationError> {
        sqlx::query("UPDATE recall_conversations SET ai_enqueue_pending = $2 WHERE id = $1")
            .bind(id)
            .bind(pending)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn enqueue_pending(&self, limit: usize) -> Result<Vec<Conversation>, ConversationError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recall_conversations WHERE ai_enqueue_pending ORDER BY id LIMIT $1"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.iter().map(conversation).collect()
    }
}
