//! The transport port: how task messages travel between producers and workers.
//!
//! Every transport delivers at least once: a message received and not acknowledged comes
//! back after its visibility timeout, a retried one comes back after its delay, and a dead
//! one is kept apart for an operator. The adapters: [`inprocess::InProcess`] (the dev
//! runner's embedded default), [`redis_streams::RedisStreams`] (`celeriac worker`) and
//! [`crate::sqs::SqsTransport`] (Lambda).

use std::time::Duration;

use async_trait::async_trait;

pub mod inprocess;
pub mod redis_streams;

pub use inprocess::InProcess;
pub use redis_streams::RedisStreams;

/// Why a transport call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The broker cannot be reached or is throttling: retry later.
    #[error("task queue unavailable: {0}")]
    Unavailable(String),
    /// The broker refused this request (unknown queue, message too large).
    #[error("task queue refused the request: {0}")]
    Rejected(String),
}

impl TransportError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<TransportError> for celeriac_platform::Error {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Unavailable(reason) => Self::Unavailable {
                component: "queue",
                reason,
            },
            TransportError::Rejected(reason) => Self::internal(reason),
        }
    }
}

/// A received message, invisible to other consumers until acknowledged, retried or its
/// visibility timeout passes.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The queue it came from.
    pub queue: String,
    /// The message body (a task envelope, unless something foreign was sent).
    pub body: Vec<u8>,
    /// The handle that acknowledges it.
    pub receipt: String,
    /// How many times it has been delivered, this time included.
    pub delivery: u32,
}

/// A message broker.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Which adapter this is, for health and logs.
    fn adapter(&self) -> &'static str;

    /// Sends `body` to `queue`, deliverable after `delay`; higher `priority` first.
    async fn send(
        &self,
        queue: &str,
        body: &str,
        priority: Option<u8>,
        delay: Duration,
    ) -> Result<(), TransportError>;

    /// Up to `max` messages from `queue`, waiting up to `wait` for the first.
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, TransportError>;

    /// Done with it: it will not be delivered again.
    async fn ack(&self, delivery: &Delivery) -> Result<(), TransportError>;

    /// Deliver it again after `delay`.
    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), TransportError>;

    /// Move it to the queue's dead letters.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), TransportError>;
}
