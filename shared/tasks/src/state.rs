//! Task states, kept where Celery's Redis result backend keeps them.
//!
//! A record lives at `celery-task-meta-{id}` with a TTL (1 day by default, Celery's
//! `result_expires`) and holds the state, the result or error, attempts and timestamps.
//! Each record is one key, so every operation is cluster-safe.
//!
//! Revocation and starting race for one claim key per task (`set if absent`): whichever
//! comes first wins, so a task revoked before it starts never runs, and a task that has
//! started cannot be revoked.

use std::time::Duration;

use celeriac_kv::{KvError, SharedKv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;

/// Celery's default `result_expires`.
pub const DEFAULT_RESULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Enqueued, not yet started.
    Pending,
    /// Running.
    Started,
    /// Failed and waiting for its next attempt.
    Retry,
    /// Finished with a result.
    Success,
    /// Failed for good.
    Failure,
    /// Revoked or expired before it started.
    Revoked,
}

impl TaskState {
    /// Whether the task will not change state again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
    }
}

/// The stored record of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub task: String,
    /// Celery calls it `status`.
    pub status: TaskState,
    /// The result, on SUCCESS.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// The last error, on RETRY and FAILURE (Celery's `traceback` slot holds the message).
    #[serde(default)]
    pub error: Option<String>,
    /// Retries so far.
    pub retries: u32,
    /// Queue it was sent to.
    pub queue: String,
    /// Enqueued.
    pub created_at: DateTime<Utc>,
    /// Last attempt started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a final state (Celery's `date_done`).
    #[serde(default)]
    pub date_done: Option<DateTime<Utc>>,
}

impl TaskRecord {
    /// The PENDING record written at enqueue.
    pub fn pending(envelope: &Envelope) -> Self {
        Self {
            task_id: envelope.id.clone(),
            task: envelope.task.clone(),
            status: TaskState::Pending,
            result: None,
            error: None,
            retries: envelope.retries,
            queue: envelope.queue.clone(),
            created_at: envelope.enqueued_at,
            started_at: None,
            date_done: None,
        }
    }
}

/// What [`TaskStore::claim_start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This attempt may run.
    Run,
    /// The task was revoked first: do not run it.
    Revoked,
}

/// Whether a revoke took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// The task will not run.
    Revoked,
    /// It had already started (or finished).
    AlreadyStarted,
}

/// Task records on the key-value port.
#[derive(Debug, Clone)]
pub struct TaskStore {
    kv: SharedKv,
    ttl: Duration,
}

const STARTED: &[u8] = b"started";
const REVOKED: &[u8] = b"revoked";

impl TaskStore {
    /// Records with the default TTL.
    pub fn new(kv: SharedKv) -> Self {
        Self::with_ttl(kv, DEFAULT_RESULT_TTL)
    }

    /// Records that expire after `ttl`.
    pub fn with_ttl(kv: SharedKv, ttl: Duration) -> Self {
        Self { kv, ttl }
    }

    fn key(task_id: &str) -> String {
        format!("celery-task-meta-{task_id}")
    }

    fn claim_key(task_id: &str) -> String {
        format!("celeriac-task-claim-{task_id}")
    }

    /// The record of `task_id`, if it exists and has not expired.
    pub async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, KvError> {
        let Some(bytes) = self.kv.get(&Self::key(task_id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KvError::Rejected(format!("task record {task_id} is unreadable: {e}")))
    }

    /// Writes `record`, replacing the previous one.
    pub async fn put(&self, record: &TaskRecord) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| KvError::Rejected(format!("task record not serialisable: {e}")))?;
        self.kv
            .set(&Self::key(&record.task_id), &bytes, Some(self.ttl))
            .await
    }

    /// Writes `record` unless one exists: the PENDING record written at enqueue must never
    /// overwrite the state a fast worker has already recorded.
    pub async fn put_if_absent(&self, record: &TaskRecord) -> Result<bool, KvError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| KvError::Rejected(format!("task record not serialisable: {e}")))?;
        self.kv
            .set_if_absent(&Self::key(&record.task_id), &bytes, Some(self.ttl))
            .await
    }

    /// Removes the record (an enqueue that failed).
    pub async fn delete(&self, task_id: &str) -> Result<(), KvError> {
        self.kv.delete(&Self::key(task_id)).await.map(|_| ())
    }

    /// Claims the right to run; false when a revoke came first.
    pub async fn claim_start(&self, task_id: &str) -> Result<Claim, KvError> {
        let key = Self::claim_key(task_id);
        if self.kv.set_if_absent(&key, STARTED, Some(self.ttl)).await? {
            return Ok(Claim::Run);
        }
        match self.kv.get(&key).await?.as_deref() {
            Some(REVOKED) => Ok(Claim::Revoked),
            // Started before (a retry or a redelivery): it may run again.
            _ => Ok(Claim::Run),
        }
    }

    /// Revokes a task that has not started, and marks its record REVOKED.
    pub async fn revoke(&self, task_id: &str) -> Result<Revoke, KvError> {
        let key = Self::claim_key(task_id);
        if !self.kv.set_if_absent(&key, REVOKED, Some(self.ttl)).await? {
            return Ok(match self.kv.get(&key).await?.as_deref() {
                Some(REVOKED) => Revoke::Revoked,
                _ => Revoke::AlreadyStarted,
            });
        }
        if let Some(mut record) = self.get(task_id).await? {
            record.status = TaskState::Revoked;
            record.date_done = Some(Utc::now());
            self.put(&record).await?;
        }
        Ok(Revoke::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use celeriac_kv::MemoryKv;

    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            id: "t-1".into(),
            task: "test_celery".into(),
            args: serde_json::Value::Null,
            retries: 0,
            eta: None,
            expires: None,
            priority: None,
            queue: "main-queue".into(),
            root_id: None,
            parent_id: None,
            idempotency_key: None,
            timelimit: None,
            enqueued_at: Utc::now(),
            origin: None,
            trace_id: None,
        }
    }

    #[tokio::test]
    async fn records_live_under_celerys_key_with_a_ttl() {
        let kv: SharedKv = Arc::new(MemoryKv::new());
        let store = TaskStore::new(kv.clone());
        store
            .put(&TaskRecord::pending(&envelope()))
            .await
            .expect("put");
        let ttl = kv
            .ttl("celery-task-meta-t-1")
            .await
            .expect("ttl")
            .expect("has ttl");
        assert!(ttl > Duration::from_secs(23 * 3600));
        let record = store.get("t-1").await.expect("get").expect("exists");
        assert_eq!(record.status, TaskState::Pending);
        assert_eq!(store.get("unknown").await.expect("get"), None);
        let raw = kv
            .get("celery-task-meta-t-1")
            .await
            .expect("get")
            .expect("raw");
        let json: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(json["status"], "PENDING");
    }

    #[tokio::test]
    async fn a_late_pending_write_never_overwrites_a_started_task() {
        let store = TaskStore::new(Arc::new(MemoryKv::new()));
        let mut started = TaskRecord::pending(&envelope());
        started.status = TaskState::Started;
        store.put(&started).await.expect("put");
        assert!(
            !store
                .put_if_absent(&TaskRecord::pending(&envelope()))
                .await
                .expect("nx")
        );
        let record = store.get("t-1").await.expect("get").expect("exists");
        assert_eq!(record.status, TaskState::Started);
    }

    #[tokio::test]
    async fn revoke_before_start_wins_and_after_start_loses() {
        let store = TaskStore::new(Arc::new(MemoryKv::new()));
        store
            .put(&TaskRecord::pending(&envelope()))
            .await
            .expect("put");
        assert_eq!(store.revoke("t-1").await.expect("revoke"), Revoke::Revoked);
        assert_eq!(
            store.claim_start("t-1").await.expect("claim"),
            Claim::Revoked
        );
        let record = store.get("t-1").await.expect("get").expect("exists");
        assert_eq!(record.status, TaskState::Revoked);

        assert_eq!(store.claim_start("t-2").await.expect("claim"), Claim::Run);
        assert_eq!(store.claim_start("t-2").await.expect("again"), Claim::Run);
        assert_eq!(
            store.revoke("t-2").await.expect("revoke"),
            Revoke::AlreadyStarted
        );
    }
}
