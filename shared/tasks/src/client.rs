//! Enqueuing tasks from handlers: Celery's `delay` / `apply_async`.
//!
//! The PENDING record and the message go out together, so an enqueue costs one round trip
//! (on Redis, both ride one multiplexed connection: one write, one wait). The record is
//! written only if absent, so it never overwrites the state of a task a fast worker has
//! already started. If the send fails the record is removed and the caller gets a
//! retryable error (an HTTP handler answers 503, nothing half-enqueued remains).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::envelope::Envelope;
use crate::state::{TaskRecord, TaskStore};
use crate::task::{Task, TaskError, TaskSpec};
use crate::transport::Transport;

/// Per-call options, as Celery's `apply_async`.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Run no sooner than this long from now.
    pub countdown: Option<Duration>,
    /// Run no sooner than this instant (wins over `countdown`).
    pub eta: Option<DateTime<Utc>>,
    /// Revoke instead of running after this instant.
    pub expires: Option<DateTime<Utc>>,
    /// Another queue than the task's own.
    pub queue: Option<String>,
    /// Another priority than the task's own.
    pub priority: Option<u8>,
    /// Effects keyed by this run once (default: the task id).
    pub idempotency_key: Option<String>,
    /// The task sending this one: (root id, parent id).
    pub parent: Option<(String, String)>,
    /// Trace id of the request that sends it.
    pub trace_id: Option<String>,
    /// The user it is sent for: only their session may read its state and result.
    pub owner: Option<String>,
}

/// Sends tasks over a transport and records them.
#[derive(Debug, Clone)]
pub struct TaskClient {
    transport: Arc<dyn Transport>,
    store: TaskStore,
    origin: String,
}

impl TaskClient {
    /// A client that sends over `transport`, records in `store`, and signs as `origin`.
    pub fn new(transport: Arc<dyn Transport>, store: TaskStore, origin: impl Into<String>) -> Self {
        Self {
            transport,
            store,
            origin: origin.into(),
        }
    }

    /// The records this client writes.
    pub fn store(&self) -> &TaskStore {
        &self.store
    }

    /// `task.delay(args)`: enqueue with the task's own routing; returns the task id.
    pub async fn delay<T: Task>(&self, task: &T, args: &T::Args) -> Result<String, TaskError> {
        let args = serde_json::to_value(args).map_err(|e| TaskError::Permanent(e.to_string()))?;
        self.send(&task.spec(), args, SendOptions::default()).await
    }

    /// [`delay`](Self::delay) on behalf of `user_id`: the task's state and result are that
    /// user's to read (a user's chat analysis, a conversation's processing).
    pub async fn delay_for<T: Task>(
        &self,
        task: &T,
        args: &T::Args,
        user_id: &str,
    ) -> Result<String, TaskError> {
        let args = serde_json::to_value(args).map_err(|e| TaskError::Permanent(e.to_string()))?;
        let options = SendOptions {
            owner: Some(user_id.to_owned()),
            ..SendOptions::default()
        };
        self.send(&task.spec(), args, options).await
    }

    /// `apply_async`: enqueue `spec` with `args` and `options`; returns the task id.
    pub async fn send(
        &self,
        spec: &TaskSpec,
        args: serde_json::Value,
        options: SendOptions,
    ) -> Result<String, TaskError> {
        if options.priority.is_some_and(|p| p > 9) {
            return Err(TaskError::Permanent(
                "priority must be between 0 and 9".into(),
            ));
        }
        let now = Utc::now();
        let eta = options.eta.or_else(|| {
            options
                .countdown
                .and_then(|c| chrono::Duration::from_std(c).ok())
                .map(|c| now + c)
        });
        let id = uuid::Uuid::new_v4().to_string();
        let (root_id, parent_id) = match options.parent {
            Some((root, parent)) => (Some(root), Some(parent)),
            None => (Some(id.clone()), None),
        };
        let envelope = Envelope {
            id: id.clone(),
            task: spec.name.to_owned(),
            args,
            retries: 0,
            eta,
            expires: options.expires,
            priority: options.priority.or(spec.priority),
            queue: spec.route(
                options.queue.as_deref().unwrap_or(spec.queue),
                options.priority.or(spec.priority),
            ),
            root_id,
            parent_id,
            idempotency_key: options.idempotency_key,
            timelimit: Some(spec.time_limit.as_secs()),
            enqueued_at: now,
            origin: Some(self.origin.clone()),
            trace_id: options.trace_id,
            owner: options.owner,
        };
        let delay = eta
            .and_then(|eta| (eta - now).to_std().ok())
            .unwrap_or_default();
        let record = TaskRecord::pending(&envelope);
        let body = envelope.to_json();
        let (recorded, sent) = futures::join!(
            self.store.put_if_absent(&record),
            self.transport
                .send(&envelope.queue, &body, envelope.priority, delay)
        );
        if let Err(err) = sent {
            // A refused send certainly enqueued nothing. An unavailable broker may have
            // applied it before the answer was lost: keep the record, which a run would
            // overwrite, rather than erase the state of a task that may exist.
            if !err.is_retryable() {
                let _ = self.store.delete(&id).await;
            }
            return Err(if err.is_retryable() {
                TaskError::Retryable(err.to_string())
            } else {
                TaskError::Permanent(err.to_string())
            });
        }
        if let Err(err) = recorded {
            // Sent, so it will run and record its own state; only the PENDING window is lost.
            tracing::warn!(task_id = %id, error = %err, "task sent but its PENDING record was not written");
        }
        tracing::info!(task_id = %id, task = spec.name, queue = %envelope.queue, delay_ms = delay.as_millis(), "task enqueued");
        Ok(id)
    }
}
