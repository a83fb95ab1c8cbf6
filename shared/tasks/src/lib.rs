//! celeriac's Celery: how tasks travel and run.
//!
//! This crate grows into the task runtime (envelope, states, retries, idempotency,
//! schedules). Today it holds the transports' health probes, so `GET /api/health/` can say
//! whether the queue a deployment sends to is reachable.

pub mod sqs;

pub use sqs::SqsProbe;
