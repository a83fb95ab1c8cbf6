//! Declaring tasks: a name, typed arguments, routing and retry policy, and the code.
//!
//! A task implements [`Task`]; a [`Registry`] maps names to tasks so that a worker (or a
//! queue-triggered Lambda) can run whatever arrives, and a producer can route by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::state::DEFAULT_RESULT_TTL;

/// Celery's default queue name.
pub const DEFAULT_QUEUE: &str = "celery";

/// How a task is routed, retried and limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The registered name, as producers send it.
    pub name: &'static str,
    /// Queue it is routed to unless the sender says otherwise.
    pub queue: &'static str,
    /// 0 (lowest) to 9 (highest); `None` for the queue's default.
    pub priority: Option<u8>,
    /// Retries after the first attempt (Celery's default: 3).
    pub max_retries: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Hard time limit of one attempt.
    pub time_limit: Duration,
    /// How long its state record is kept.
    pub result_ttl: Duration,
    /// Whether its messages are split by priority into `{queue}-high`, `{queue}` and
    /// `{queue}-low`. SQS and Redis Streams have no per-message priority, so a priority is
    /// a queue of its own, and the template gives each its own concurrency.
    pub priority_queues: bool,
}

impl TaskSpec {
    /// A spec with Celery's defaults: default queue, 3 retries, 1 s..600 s full-jitter
    /// backoff, a 5-minute time limit and a 1-day result TTL.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            queue: DEFAULT_QUEUE,
            priority: None,
            max_retries: 3,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(600),
                jitter: true,
            },
            time_limit: Duration::from_secs(300),
            result_ttl: DEFAULT_RESULT_TTL,
            priority_queues: false,
        }
    }

    /// Split by priority into `{queue}-high`, `{queue}` and `{queue}-low`.
    pub const fn with_priority_queues(mut self) -> Self {
        self.priority_queues = true;
        self
    }

    /// The queue a message for `queue` with `priority` goes to: priorities 7 to 9 go to
    /// `-high`, 0 to 3 to `-low`, the rest (and no priority) to `queue` itself.
    pub fn route(&self, queue: &str, priority: Option<u8>) -> String {
        match priority {
            Some(7..=9) if self.priority_queues => format!("{queue}-high"),
            Some(0..=3) if self.priority_queues => format!("{queue}-low"),
            _ => queue.to_owned(),
        }
    }

    /// Every queue this task's messages can be in.
    pub fn queues(&self) -> Vec<String> {
        if self.priority_queues {
            vec![
                format!("{}-high", self.queue),
                self.queue.to_owned(),
                format!("{}-low", self.queue),
            ]
        } else {
            vec![self.queue.to_owned()]
        }
    }

    /// Routed to `queue`.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }

    /// At most `n` retries.
    pub const fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Its final record (result or error) kept for `ttl`.
    pub const fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// Each attempt limited to `limit`.
    pub const fn time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// With `backoff` between attempts.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// Why an attempt failed, and whether another attempt can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// A dependency failed or was slow: retry with backoff.
    #[error("{0}")]
    Retryable(String),
    /// The arguments or the data are wrong: retrying cannot help, fail now.
    #[error("{0}")]
    Permanent(String),
}

impl TaskError {
    /// Whether another attempt can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// `err` as a task error: retried when `retryable` says another attempt can help
    /// (each port's error type knows that; the task runtime does not depend on the ports).
    pub fn classify(err: &impl std::fmt::Display, retryable: bool) -> Self {
        if retryable {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

impl From<celeriac_platform::Error> for TaskError {
    fn from(err: celeriac_platform::Error) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

impl From<celeriac_kv::KvError> for TaskError {
    fn from(err: celeriac_kv::KvError) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

/// What an attempt knows about itself.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Task id.
    pub task_id: String,
    /// Retries before this attempt (0 on the first).
    pub retries: u32,
    /// When this attempt must be done (time limit or function deadline, the earlier).
    pub deadline: Instant,
}

/// A task: typed arguments in, a serialisable result out.
#[async_trait]
pub trait Task: Send + Sync + 'static {
    /// Arguments, deserialised from the envelope's `args`.
    type Args: DeserializeOwned + Serialize + Send + Sync;
    /// The result stored on SUCCESS.
    type Output: Serialize + Send;

    /// Name, routing and policy.
    fn spec(&self) -> TaskSpec;

    /// One attempt.
    async fn run(&self, args: Self::Args, ctx: &TaskContext) -> Result<Self::Output, TaskError>;
}

/// A task with its types erased, as the registry holds it.
#[async_trait]
pub trait ErasedTask: Send + Sync {
    /// Name, routing and policy.
    fn spec(&self) -> TaskSpec;
    /// Deserialises `args`, runs, serialises the output.
    async fn call(
        &self,
        args: serde_json::Value,
        ctx: &TaskContext,
    ) -> Result<serde_json::Value, TaskError>;
}

struct Typed<T>(T);

#[async_trait]
impl<T: Task> ErasedTask for Typed<T> {
    fn spec(&self) -> TaskSpec {
        self.0.spec()
    }

    async fn call(
        &self,
        args: serde_json::Value,
        ctx: &TaskContext,
    ) -> Result<serde_json::Value, TaskError> {
        let args: T::Args = serde_json::from_value(args).map_err(|e| {
            TaskError::Permanent(format!(
                "invalid arguments for {}: {}",
                self.spec().name,
                crate::envelope::without_values(&e)
            ))
        })?;
        let output = self.0.run(args, ctx).await?;
        serde_json::to_value(output).map_err(|e| {
            TaskError::Permanent(format!(
                "result of {} not serialisable: {e}",
                self.spec().name
            ))
        })
    }
}

/// Tasks by name.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<&'static str, Arc<dyn ErasedTask>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.tasks.keys()).finish()
    }
}

impl Registry {
    /// No tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `task` under its spec's name.
    pub fn register<T: Task>(mut self, task: T) -> Self {
        let name = task.spec().name;
        self.tasks.insert(name, Arc::new(Typed(task)));
        self
    }

    /// The task called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn ErasedTask>> {
        self.tasks.get(name).cloned()
    }

    /// Registered names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tasks.keys().copied()
    }

    /// The queues these tasks route to (priority queues included), each once.
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<_> = self
            .tasks
            .values()
            .flat_map(|t| t.spec().queues())
            .collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_route_to_their_queues_only_when_asked() {
        let plain = TaskSpec::new("t").queue("q");
        assert_eq!(plain.route("q", Some(9)), "q");
        assert_eq!(plain.queues(), ["q"]);
        let split = plain.with_priority_queues();
        assert_eq!(split.route("q", Some(9)), "q-high");
        assert_eq!(split.route("q", Some(7)), "q-high");
        assert_eq!(split.route("q", Some(5)), "q");
        assert_eq!(split.route("q", None), "q");
        assert_eq!(split.route("q", Some(0)), "q-low");
        assert_eq!(split.queues(), ["q-high", "q", "q-low"]);
    }
}
