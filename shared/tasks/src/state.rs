//! Task states, kept where Celery's Redis result backend keeps them.
//!
//! A record lives at `celery-task-meta-{id}` with a TTL (1 day by default, Celery's
//! `result_expires`) and holds the state, the result or error, attempts and timestamps.
//! Each record is one key, so every operation is cluster-safe.
//!
//! Starting, revoking and finishing are compare-and-swaps on that one record, so they race
//! safely: whichever comes first wins; a task revoked before it starts never runs, and a
//! task that has started cannot be revoked. A STARTED record carries its attempt's claim
//! (`claimed_until`), which also makes a duplicate delivery wait instead of running twice.

use std::time::Duration;

use celeriac_kv::{KvError, SharedKv, Swap};
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
    /// While STARTED: until when the running attempt holds it. A later delivery finding
    /// the claim live waits; finding it lapsed (its worker died), runs. Set from the
    /// worker's clock, so claims are long (seconds) next to clock skew between hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<DateTime<Utc>>,
    /// The user the task runs for (the envelope's `owner`): the status endpoints show the
    /// record to that user's session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
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
            claimed_until: None,
            owner: envelope.owner.clone(),
        }
    }
}

/// What [`TaskStore::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// This attempt holds the task: its STARTED record, as written.
    Run(TaskRecord),
    /// The task was revoked (or expired) first: do not run it.
    Revoked,
    /// It finished already (a duplicate delivery): its final record.
    Finished(TaskRecord),
    /// Another attempt holds it for this much longer.
    Busy(Duration),
}

/// Whether a revoke took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// The task will not run (again).
    Revoked,
    /// It is running or has finished.
    AlreadyStarted,
    /// No record: unknown id, or its record expired.
    Unknown,
}

/// One decision of a read-decide-swap loop: write this record and answer `T`, or leave the
/// record as it is and answer `T`.
enum Step<T> {
    // Boxed: a record is far larger than the answers kept beside it.
    Write(Box<TaskRecord>, T),
    Keep(T),
}

/// Swaps lost to concurrent writers before giving up; each loss means another writer made
/// progress, so this is only reached under pathological contention.
const MAX_SWAPS: usize = 8;

/// Task records on the key-value port.
///
/// Every state change is a compare-and-swap on the record, with the rules in Rust: the
/// record itself is the claim (a STARTED record with `claimed_until` in the future), so
/// starting, revoking and detecting a duplicate delivery need no other key, and a worker
/// starts a fresh task in one round trip by guessing that the record is still the PENDING
/// one its client wrote (encoding is deterministic, so the guess is byte-exact).
#[derive(Debug, Clone)]
pub struct TaskStore {
    kv: SharedKv,
    ttl: Duration,
}

fn encode(record: &TaskRecord) -> Result<Vec<u8>, KvError> {
    serde_json::to_vec(record)
        .map_err(|e| KvError::Rejected(format!("task record not serialisable: {e}")))
}

fn decode(task_id: &str, bytes: Option<&[u8]>) -> Result<Option<TaskRecord>, KvError> {
    bytes
        .map(|b| {
            serde_json::from_slice(b)
                .map_err(|e| KvError::Rejected(format!("task record {task_id} is unreadable: {e}")))
        })
        .transpose()
}

impl TaskStore {
    /// Records with the default TTL.
    pub fn new(kv: SharedKv) -> Self {
        Self::with_ttl(kv, DEFAULT_RESULT_TTL)
    }

    /// Records that expire after `ttl` (a task's own `result_ttl` applies to its final
    /// record).
    pub fn with_ttl(kv: SharedKv, ttl: Duration) -> Self {
        Self { kv, ttl }
    }

    fn key(task_id: &str) -> String {
        format!("celery-task-meta-{task_id}")
    }

    /// The record of `task_id`, if it exists and has not expired.
    pub async fn get(&self, task_id: &str) -> Result<Option<TaskRecord>, KvError> {
        let bytes = self.kv.get(&Self::key(task_id)).await?;
        decode(task_id, bytes.as_deref())
    }

    /// Writes `record`, replacing the previous one, with the store's TTL.
    pub async fn put(&self, record: &TaskRecord) -> Result<(), KvError> {
        self.put_for(record, self.ttl).await
    }

    /// Writes `record`, replacing the previous one, kept for `ttl`.
    pub async fn put_for(&self, record: &TaskRecord, ttl: Duration) -> Result<(), KvError> {
        self.kv
            .set(&Self::key(&record.task_id), &encode(record)?, Some(ttl))
            .await
    }

    /// Writes `record` unless one exists: the PENDING record written at enqueue must never
    /// overwrite the state a fast worker has already recorded.
    pub async fn put_if_absent(&self, record: &TaskRecord) -> Result<bool, KvError> {
        self.kv
            .set_if_absent(
                &Self::key(&record.task_id),
                &encode(record)?,
                Some(self.ttl),
            )
            .await
    }

    /// Removes the record (an enqueue that failed).
    pub async fn delete(&self, task_id: &str) -> Result<(), KvError> {
        self.kv.delete(&Self::key(task_id)).await.map(|_| ())
    }

    /// Read, decide, compare-and-swap, until a decision sticks. `guess` is the record the
    /// caller expects (tried without reading first); a `Keep` decided on an unverified
    /// guess is checked against a real read.
    async fn update<T>(
        &self,
        task_id: &str,
        guess: Option<TaskRecord>,
        ttl: Duration,
        mut decide: impl FnMut(Option<&TaskRecord>) -> Step<T>,
    ) -> Result<T, KvError> {
        let key = Self::key(task_id);
        let (mut current, mut bytes, mut verified) = match guess {
            Some(record) => {
                let bytes = encode(&record)?;
                (Some(record), Some(bytes), false)
            }
            None => {
                let bytes = self.kv.get(&key).await?;
                (decode(task_id, bytes.as_deref())?, bytes, true)
            }
        };
        for _ in 0..MAX_SWAPS {
            match decide(current.as_ref()) {
                Step::Keep(answer) if verified => return Ok(answer),
                Step::Keep(_) => {
                    bytes = self.kv.get(&key).await?;
                    current = decode(task_id, bytes.as_deref())?;
                    verified = true;
                }
                Step::Write(next, answer) => {
                    let new = encode(&next)?;
                    match self
                        .kv
                        .compare_and_swap(&key, bytes.as_deref(), &new, Some(ttl))
                        .await?
                    {
                        Swap::Swapped => return Ok(answer),
                        Swap::Current(found) => {
                            current = decode(task_id, found.as_deref())?;
                            bytes = found;
                            verified = true;
                        }
                    }
                }
            }
        }
        Err(KvError::Unavailable(format!(
            "task record {task_id} kept changing under concurrent writers"
        )))
    }

    /// Claims `envelope`'s task for an attempt (its `retries`-th retry) until
    /// `claimed_until`, recording it STARTED; one round trip when the record is still the
    /// PENDING one written at enqueue.
    pub async fn begin(
        &self,
        envelope: &Envelope,
        retries: u32,
        claimed_until: DateTime<Utc>,
    ) -> Result<Start, KvError> {
        let now = Utc::now();
        let guess = TaskRecord::pending(envelope);
        self.update(&envelope.id, Some(guess), self.ttl, |current| {
            let mut record = match current {
                None => TaskRecord::pending(envelope),
                Some(record) => match record.status {
                    TaskState::Revoked => return Step::Keep(Start::Revoked),
                    TaskState::Success | TaskState::Failure => {
                        return Step::Keep(Start::Finished(record.clone()));
                    }
                    TaskState::Started => match record.claimed_until.filter(|at| *at > now) {
                        Some(at) => {
                            return Step::Keep(Start::Busy(
                                (at - now).to_std().unwrap_or_default(),
                            ));
                        }
                        // Its worker died: the claim lapsed, so this attempt takes over.
                        None => record.clone(),
                    },
                    TaskState::Pending | TaskState::Retry => record.clone(),
                },
            };
            record.status = TaskState::Started;
            record.retries = retries;
            record.started_at = Some(now);
            record.claimed_until = Some(claimed_until);
            Step::Write(Box::new(record.clone()), Start::Run(record))
        })
        .await
    }

    /// Extends a running attempt's claim; false when the record is no longer the one this
    /// attempt wrote (it lost the claim). `record` is updated to what was written.
    pub async fn renew(
        &self,
        record: &mut TaskRecord,
        claimed_until: DateTime<Utc>,
    ) -> Result<bool, KvError> {
        let expected = encode(record)?;
        let mut next = record.clone();
        next.claimed_until = Some(claimed_until);
        let swapped = self
            .kv
            .compare_and_swap(
                &Self::key(&record.task_id),
                Some(&expected),
                &encode(&next)?,
                Some(self.ttl),
            )
            .await?;
        if swapped == Swap::Swapped {
            *record = next;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Records that `envelope`'s task ends without running (expired, unknown task, too many
    /// deliveries), unless it is running or has finished; true when this call recorded it.
    pub async fn end_unstarted(
        &self,
        envelope: &Envelope,
        status: TaskState,
        error: &str,
        ttl: Duration,
    ) -> Result<bool, KvError> {
        let now = Utc::now();
        self.update(
            &envelope.id,
            Some(TaskRecord::pending(envelope)),
            ttl,
            |current| {
                let mut record = match current {
                    None => TaskRecord::pending(envelope),
                    Some(r) if r.status.is_final() => return Step::Keep(false),
                    Some(r)
                        if r.status == TaskState::Started
                            && r.claimed_until.is_some_and(|at| at > now) =>
                    {
                        return Step::Keep(false);
                    }
                    Some(r) => r.clone(),
                };
                record.status = status;
                record.error = Some(error.to_owned());
                record.claimed_until = None;
                record.date_done = Some(now);
                Step::Write(Box::new(record), true)
            },
        )
        .await
    }

    /// Revokes a task that is not running and has not finished (PENDING, or between
    /// retries), and marks its record REVOKED, so no delivery of it runs again.
    pub async fn revoke(&self, task_id: &str) -> Result<Revoke, KvError> {
        let now = Utc::now();
        self.update(task_id, None, self.ttl, |current| match current {
            None => Step::Keep(Revoke::Unknown),
            Some(r) if r.status == TaskState::Revoked => Step::Keep(Revoke::Revoked),
            Some(r) if matches!(r.status, TaskState::Pending | TaskState::Retry) => {
                let mut record = r.clone();
                record.status = TaskState::Revoked;
                record.error = Some("revoked".into());
                record.date_done = Some(now);
                Step::Write(Box::new(record), Revoke::Revoked)
            }
            Some(_) => Step::Keep(Revoke::AlreadyStarted),
        })
        .await
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
            owner: None,
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

    fn later(seconds: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(seconds)
    }

    #[tokio::test]
    async fn revoke_before_start_wins_and_after_start_loses() {
        let store = TaskStore::new(Arc::new(MemoryKv::new()));
        let first = envelope();
        store.put(&TaskRecord::pending(&first)).await.expect("put");
        assert_eq!(store.revoke("t-1").await.expect("revoke"), Revoke::Revoked);
        assert_eq!(
            store.begin(&first, 0, later(30)).await.expect("begin"),
            Start::Revoked
        );
        let record = store.get("t-1").await.expect("get").expect("exists");
        assert_eq!(record.status, TaskState::Revoked);

        let mut second = envelope();
        second.id = "t-2".into();
        store.put(&TaskRecord::pending(&second)).await.expect("put");
        assert!(matches!(
            store.begin(&second, 0, later(30)).await.expect("begin"),
            Start::Run(_)
        ));
        assert_eq!(
            store.revoke("t-2").await.expect("revoke"),
            Revoke::AlreadyStarted
        );
        assert_eq!(store.revoke("nope").await.expect("revoke"), Revoke::Unknown);
    }

    #[tokio::test]
    async fn a_live_claim_makes_a_duplicate_wait_and_a_lapsed_one_lets_it_run() {
        let store = TaskStore::new(Arc::new(MemoryKv::new()));
        let task = envelope();
        store.put(&TaskRecord::pending(&task)).await.expect("put");
        let Start::Run(mut running) = store.begin(&task, 0, later(30)).await.expect("begin") else {
            panic!("a pending task starts");
        };
        assert_eq!(running.status, TaskState::Started);
        assert!(matches!(
            store.begin(&task, 0, later(30)).await.expect("duplicate"),
            Start::Busy(left) if left > Duration::from_secs(25)
        ));
        assert!(store.renew(&mut running, later(60)).await.expect("renew"));
        // The claim lapses (its worker died): the next delivery takes over, and the dead
        // attempt's renewal no longer holds.
        assert!(store.renew(&mut running, later(-1)).await.expect("renew"));
        let mut dead = running.clone();
        let Start::Run(_) = store.begin(&task, 1, later(30)).await.expect("take over") else {
            panic!("a lapsed claim is taken over");
        };
        assert!(!store.renew(&mut dead, later(60)).await.expect("renew"));
    }

    #[tokio::test]
    async fn a_finished_task_is_not_started_again_nor_ended_twice() {
        let store = TaskStore::new(Arc::new(MemoryKv::new()));
        let task = envelope();
        let Start::Run(mut record) = store.begin(&task, 0, later(30)).await.expect("begin") else {
            panic!("a task without a record (its PENDING write was lost) still starts");
        };
        record.status = TaskState::Success;
        record.result = Some(serde_json::json!(7));
        store.put(&record).await.expect("finish");
        assert!(matches!(
            store.begin(&task, 0, later(30)).await.expect("duplicate"),
            Start::Finished(r) if r.result == Some(serde_json::json!(7))
        ));
        assert!(
            !store
                .end_unstarted(&task, TaskState::Revoked, "expired", DEFAULT_RESULT_TTL)
                .await
                .expect("end")
        );
        assert_eq!(
            store.get("t-1").await.expect("get").expect("exists").status,
            TaskState::Success
        );
    }
}
