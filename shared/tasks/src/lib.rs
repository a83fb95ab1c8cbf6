//! celeriac's Celery: declaring, enqueuing, running, retrying and observing tasks.
//!
//! - [`task`]: a task's name, typed arguments, queue, priority, retries, time limit.
//! - [`envelope`]: the JSON message, named after Celery's protocol v2 headers.
//! - [`state`]: PENDING → STARTED → (RETRY → STARTED)* → SUCCESS | FAILURE, and REVOKED,
//!   stored where Celery's Redis backend stores them.
//! - [`runner`]: one message, start to finish, the same on every transport.
//! - [`transport`]: the broker port and its adapters; [`worker`]: the loop over it;
//!   [`sqs`]: the SQS adapter and its queue-triggered Lambda handler.
//! - [`client`]: `delay` / `apply_async` for handlers.
//! - [`idempotency`]: one effect per key however often a message arrives.

pub mod backoff;
pub mod client;
pub mod envelope;
pub mod idempotency;
pub mod lambda;
pub mod runner;
pub mod schedule;
pub mod sqs;
pub mod state;
pub mod task;
pub mod transport;
pub mod worker;

pub use client::{SendOptions, TaskClient};
pub use envelope::Envelope;
pub use runner::{Outcome, Runner};
pub use sqs::{SqsProbe, SqsTransport};
pub use state::{TaskRecord, TaskState, TaskStore};
pub use task::{Registry, Task, TaskContext, TaskError, TaskSpec};
pub use transport::{Delivery, InProcess, RedisStreams, Transport, TransportError};
pub use worker::{PollerStatus, Worker};
