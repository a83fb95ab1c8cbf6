//! Running one delivered message: the same steps whatever the transport.
//!
//! parse → expired? → due? → claim (STARTED, unless revoked, finished or held elsewhere)
//! → run under the time limit
//! → SUCCESS, or RETRY with backoff, or FAILURE. The caller (a worker loop or a
//! queue-triggered Lambda) turns the [`Outcome`] into its transport's ack, delayed
//! redelivery or dead letter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac_kv::SharedKv;
use celeriac_platform::metrics::{self, Unit};
use chrono::Utc;
use tracing::Instrument;

use crate::envelope::Envelope;
use crate::idempotency::{Begin, Idempotency};
use crate::state::{DEFAULT_RESULT_TTL, Start, TaskRecord, TaskState, TaskStore};
use crate::task::{Registry, TaskContext, TaskError};

/// Deliveries after which a message whose state cannot be read or written goes to the
/// dead letters instead of circling forever.
const MAX_DELIVERIES_WITHOUT_STATE: u32 = 10;

/// Longest wait before a delivery that found its task held by another looks again: the
/// holder may finish long before its claim runs out, and a look costs no attempt.
const BUSY_RECHECK: Duration = Duration::from_secs(5);

/// What the transport must do with the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done (succeeded, revoked, expired or already completed): acknowledge it.
    Ack,
    /// A failed attempt: deliver it again after this delay (it counts as an attempt).
    Retry(Duration),
    /// Not due yet (delivered before its ETA): send it again as a new message due after
    /// `delay`, and acknowledge this one, so the wait does not count as an attempt.
    Defer {
        /// Time left until its ETA (a transport may cap it and defer again).
        delay: Duration,
        /// Its priority, kept on the new message.
        priority: Option<u8>,
    },
    /// Never deliver it again: move it to the dead-letter queue, with the reason.
    Dead(String),
}

/// Runs messages against a registry, keeping task state.
#[derive(Debug, Clone)]
pub struct Runner {
    registry: Arc<Registry>,
    store: TaskStore,
    idempotency: Idempotency,
    lease: Option<Duration>,
}

impl Runner {
    /// A runner for `registry`, keeping state and idempotency records in `kv`.
    pub fn new(registry: Arc<Registry>, kv: SharedKv) -> Self {
        Self {
            registry,
            store: TaskStore::new(kv.clone()),
            idempotency: Idempotency::new(kv),
            lease: None,
        }
    }

    /// For hosts whose broker hands a message to another consumer after `lease` (a
    /// worker's visibility timeout). An attempt's in-progress claim then lives for half the
    /// lease and is renewed while the task runs: a live task keeps its claim however long
    /// it runs (a copy reclaimed meanwhile is deferred, not run), and a dead worker's claim
    /// has lapsed by the time its message is reclaimed, so the next attempt runs at once.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The task records this runner writes.
    pub fn store(&self) -> &TaskStore {
        &self.store
    }

    /// Runs one message body. `delivery` counts deliveries of this message (1 on the
    /// first); `deadline` is when the host stops waiting (a Lambda's deadline), if any.
    pub async fn execute(&self, body: &[u8], delivery: u32, deadline: Option<Instant>) -> Outcome {
        let envelope = match Envelope::from_json(body) {
            Ok(envelope) => envelope,
            Err(reason) => {
                tracing::error!(reason = %reason, "unparseable message goes to the dead-letter queue");
                return Outcome::Dead(reason);
            }
        };
        let span = tracing::info_span!(
            "task",
            task_id = %envelope.id,
            task = %envelope.task,
            queue = %envelope.queue,
            delivery,
        );
        self.execute_envelope(envelope, delivery, deadline)
            .instrument(span)
            .await
    }

    async fn execute_envelope(
        &self,
        envelope: Envelope,
        delivery: u32,
        deadline: Option<Instant>,
    ) -> Outcome {
        match self.try_execute(&envelope, delivery, deadline).await {
            Ok(outcome) => outcome,
            // The state store itself failed: nothing is lost by trying the message again.
            Err(err) if delivery >= MAX_DELIVERIES_WITHOUT_STATE => {
                tracing::error!(error = %err, delivery, "task state unavailable on every delivery; dead-lettered");
                Outcome::Dead(format!(
                    "task state store failed on {delivery} deliveries: {err}"
                ))
            }
            Err(err) => {
                tracing::warn!(error = %err, "task state unavailable; message will be retried");
                Outcome::Retry(Duration::from_secs(1))
            }
        }
    }

    async fn try_execute(
        &self,
        envelope: &Envelope,
        delivery: u32,
        deadline: Option<Instant>,
    ) -> Result<Outcome, celeriac_kv::KvError> {
        let now = Utc::now();
        if envelope.expires.is_some_and(|at| at <= now) {
            self.store
                .end_unstarted(
                    envelope,
                    TaskState::Revoked,
                    "expired before it started",
                    DEFAULT_RESULT_TTL,
                )
                .await?;
            tracing::info!("expired; not run");
            return Ok(Outcome::Ack);
        }
        if let Some(eta) = envelope.eta.filter(|eta| *eta > now) {
            // Delivered early (a transport whose delay is capped): wait out the rest.
            let delay = (eta - now).to_std().unwrap_or_default();
            return Ok(Outcome::Defer {
                delay,
                priority: envelope.priority,
            });
        }
        let Some(task) = self.registry.get(&envelope.task) else {
            let reason = format!("no task named {:?} is registered here", envelope.task);
            self.store
                .end_unstarted(envelope, TaskState::Failure, &reason, DEFAULT_RESULT_TTL)
                .await?;
            return Ok(Outcome::Dead(reason));
        };
        let spec = task.spec();
        let retries = envelope.retries.max(delivery.saturating_sub(1));
        if retries > spec.max_retries {
            // Delivered more often than its attempts allow: its worker died on it each time
            // (a crash, a kill, an abort). Stop here rather than take down the next worker;
            // the same bound as SQS's redrive (maxReceiveCount = retries + 1).
            let reason = format!(
                "delivered {delivery} times without finishing; more than {} attempts",
                spec.max_retries + 1
            );
            self.store
                .end_unstarted(envelope, TaskState::Failure, &reason, spec.result_ttl)
                .await?;
            return Ok(Outcome::Dead(reason));
        }
        let limit_deadline = Instant::now() + spec.time_limit;
        let deadline = deadline.map_or(limit_deadline, |d| d.min(limit_deadline));
        let until_deadline = deadline.saturating_duration_since(Instant::now());
        let claim_for = self
            .lease
            .map_or(until_deadline + Duration::from_secs(1), |lease| {
                (lease / 2).max(Duration::from_millis(100))
            });
        let claim_until = |from: chrono::DateTime<Utc>| {
            from + chrono::Duration::from_std(claim_for).unwrap_or(chrono::Duration::MAX)
        };

        // A task with its own idempotency key (shared by several task ids) also claims that
        // key; without one, the task record is the idempotency record.
        let shared_key = envelope.idempotency_key.as_deref();
        if let Some(key) = shared_key {
            match self.idempotency.begin(key, claim_for).await? {
                Begin::Run => {}
                Begin::Completed(result) => {
                    let mut record = TaskRecord::pending(envelope);
                    record.status = TaskState::Success;
                    record.result = Some(result);
                    record.date_done = Some(now);
                    self.store.put_for(&record, spec.result_ttl).await?;
                    tracing::info!(
                        "effect already applied under its idempotency key; not run again"
                    );
                    return Ok(Outcome::Ack);
                }
                Begin::InProgress => {
                    tracing::info!("another task holds its idempotency key; checking again later");
                    return Ok(Outcome::Defer {
                        delay: claim_for.min(BUSY_RECHECK),
                        priority: envelope.priority,
                    });
                }
            }
        }
        let started = self.store.begin(envelope, retries, claim_until(now)).await;
        let mut record = match started {
            Ok(Start::Run(record)) => record,
            other => {
                if let Some(key) = shared_key {
                    // Not running after all: give the key back for whoever runs it.
                    let _ = self.idempotency.release(key).await;
                }
                return match other? {
                    Start::Run(_) => unreachable!("matched above"),
                    Start::Revoked => {
                        tracing::info!("revoked before it started; not run");
                        Ok(Outcome::Ack)
                    }
                    Start::Finished(done) => {
                        tracing::info!(status = ?done.status, "already finished; duplicate delivery acknowledged");
                        Ok(Outcome::Ack)
                    }
                    Start::Busy(left) => {
                        // Not an attempt: look again later as a fresh message, so the wait
                        // does not use up the task's retries.
                        tracing::info!(
                            claim_left_ms = left.as_millis(),
                            "another delivery is running it; checking again later"
                        );
                        Ok(Outcome::Defer {
                            delay: left.clamp(Duration::from_millis(100), BUSY_RECHECK),
                            priority: envelope.priority,
                        })
                    }
                };
            }
        };

        let ctx = TaskContext {
            task_id: envelope.id.clone(),
            retries,
            deadline,
        };
        let started = Instant::now();
        let run = tokio::time::timeout_at(deadline.into(), task.call(envelope.args.clone(), &ctx));
        tokio::pin!(run);
        // With a lease, renew the claim while the task runs (in this task, so no renewal
        // can land after the result is recorded).
        let mut renew = tokio::time::interval(claim_for / 3);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                outcome = &mut run => break match outcome {
                    Ok(result) => result,
                    Err(_) => Err(TaskError::Retryable(format!(
                        "time limit of {} ms exceeded",
                        deadline.saturating_duration_since(started).as_millis()
                    ))),
                },
                _ = renew.tick(), if self.lease.is_some() => {
                    match self.store.renew(&mut record, claim_until(Utc::now())).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("lost the claim on this task to another delivery"),
                        Err(err) => tracing::warn!(error = %err, "could not renew the claim"),
                    }
                    if let Some(key) = shared_key
                        && let Err(err) = self.idempotency.renew(key, claim_for).await
                    {
                        tracing::warn!(error = %err, "could not renew the idempotency claim");
                    }
                }
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        record.claimed_until = None;
        match result {
            Ok(value) => {
                if let Some(key) = shared_key {
                    self.idempotency
                        .complete(key, &value, spec.result_ttl)
                        .await?;
                }
                record.status = TaskState::Success;
                record.result = Some(value);
                record.error = None;
                record.date_done = Some(Utc::now());
                self.store.put_for(&record, spec.result_ttl).await?;
                tracing::info!(elapsed_ms, "task succeeded");
                task_metrics(spec.name, "Succeeded", elapsed_ms);
                Ok(Outcome::Ack)
            }
            Err(err) => {
                if let Some(key) = shared_key {
                    self.idempotency.release(key).await?;
                }
                record.error = Some(err.to_string());
                if err.is_retryable() && retries < spec.max_retries {
                    let delay = spec.backoff.delay(retries + 1);
                    record.status = TaskState::Retry;
                    self.store.put(&record).await?;
                    tracing::warn!(error = %err, elapsed_ms, retry = retries + 1, delay_ms = delay.as_millis(), "task failed; will retry");
                    task_metrics(spec.name, "Retried", elapsed_ms);
                    Ok(Outcome::Retry(delay))
                } else {
                    record.status = TaskState::Failure;
                    record.date_done = Some(Utc::now());
                    self.store.put_for(&record, spec.result_ttl).await?;
                    tracing::error!(error = %err, elapsed_ms, retries, "task failed for good");
                    task_metrics(spec.name, "Failed", elapsed_ms);
                    Ok(Outcome::Dead(err.to_string()))
                }
            }
        }
    }
}

/// One run of `task` as metrics: a count of its `outcome` (Succeeded, Retried or Failed)
/// and how long it ran, per task.
fn task_metrics(task: &str, outcome: &str, elapsed_ms: f64) {
    metrics::emit(
        &[("Task", task)],
        &[
            (outcome, 1.0, Unit::Count),
            ("Duration", elapsed_ms, Unit::Milliseconds),
        ],
    );
}
