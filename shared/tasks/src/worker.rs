//! A worker loop: receive from queues, run with bounded concurrency, settle each message.
//!
//! Used by `celeriac dev` over the in-process transport and by `celeriac worker` over Redis
//! Streams. (On Lambda the event source mapping does the receiving; the queue-triggered
//! handler calls the same [`Runner`].) Each queue's poller records how its receives go in
//! [`PollerStatus`], which the process's health check reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use celeriac_platform::health::{ErrorKind, Probe, ProbeError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::runner::{Outcome, Runner};
use crate::transport::{Delivery, Transport, TransportError};

/// Most messages one receive asks for.
const MAX_BATCH: usize = 16;
/// A receive's wait for a message when no other queue needs the permits it holds.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// A receive's wait when another queue's poller may be waiting for a permit.
const CONTENDED_WAIT: Duration = Duration::from_millis(50);

/// Failed receives in a row after which a queue's poller counts as failing: one failure
/// is a blip the next receive gets past; three (about three seconds, with the pause after
/// each) is an outage health must show.
pub const FAILING_AFTER: u32 = 3;

/// How one queue's poller is doing.
#[derive(Debug, Clone, Default)]
pub struct QueueStatus {
    /// Receives that failed since the last that worked.
    pub consecutive_failures: u32,
    /// When a receive last worked (with or without messages).
    pub last_success: Option<Instant>,
    /// The last failure, while failures go on.
    pub last_error: Option<TransportError>,
}

/// Every poller's state, shared between a [`Worker`] and the health check of the process
/// that runs it; as a [`Probe`], it is failing while any queue's poller is.
#[derive(Debug, Clone)]
pub struct PollerStatus {
    adapter: &'static str,
    queues: Arc<Mutex<BTreeMap<String, QueueStatus>>>,
}

impl PollerStatus {
    fn new(adapter: &'static str) -> Self {
        Self {
            adapter,
            queues: Arc::default(),
        }
    }

    fn update(&self, queue: &str, change: impl FnOnce(&mut QueueStatus)) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        change(queues.entry(queue.to_owned()).or_default());
    }

    fn received(&self, queue: &str) {
        self.update(queue, |status| {
            status.consecutive_failures = 0;
            status.last_success = Some(Instant::now());
            status.last_error = None;
        });
    }

    fn failed(&self, queue: &str, err: &TransportError) {
        self.update(queue, |status| {
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
            status.last_error = Some(err.clone());
        });
    }

    /// Each queue polled so far, by name.
    pub fn queues(&self) -> BTreeMap<String, QueueStatus> {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl Probe for PollerStatus {
    fn adapter(&self) -> &'static str {
        self.adapter
    }

    /// Reads memory only: no call to the broker (its own component probes that).
    async fn check(&self) -> Result<(), ProbeError> {
        let queues = self.queues();
        let failing: Vec<(&String, &QueueStatus)> = queues
            .iter()
            .filter(|(_, s)| s.consecutive_failures >= FAILING_AFTER)
            .collect();
        let Some((_, first)) = failing.first() else {
            return Ok(());
        };
        let kind = first
            .last_error
            .as_ref()
            .map_or(ErrorKind::Unavailable, |e| {
                ErrorKind::from_message(&e.to_string())
            });
        let detail: Vec<String> = failing
            .iter()
            .map(|(queue, s)| {
                let since = s.last_success.map_or_else(
                    || "never received".to_owned(),
                    |at| format!("last received {} s ago", at.elapsed().as_secs()),
                );
                let error = s.last_error.as_ref().map(ToString::to_string);
                format!(
                    "{queue}: {} receives failed in a row, {since}: {}",
                    s.consecutive_failures,
                    error.unwrap_or_default()
                )
            })
            .collect();
        Err(ProbeError::new(kind, detail.join("; ")))
    }
}

/// Receives and runs tasks until told to stop.
#[derive(Debug, Clone)]
pub struct Worker {
    transport: Arc<dyn Transport>,
    runner: Runner,
    queues: Vec<String>,
    concurrency: usize,
    status: PollerStatus,
}

impl Worker {
    /// A worker for `queues` running at most `concurrency` tasks at once.
    pub fn new(
        transport: Arc<dyn Transport>,
        runner: Runner,
        queues: Vec<String>,
        concurrency: usize,
    ) -> Self {
        Self {
            status: PollerStatus::new(transport.adapter()),
            transport,
            runner,
            queues,
            concurrency: concurrency.max(1),
        }
    }

    /// How its pollers are doing, for the health check of the process running it.
    pub fn status(&self) -> PollerStatus {
        self.status.clone()
    }

    /// Runs until `shutdown` resolves, then lets running tasks finish (graceful stop):
    /// unstarted messages stay in the queue for the next worker.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut pollers = JoinSet::new();
        for queue in &self.queues {
            pollers.spawn(poll(
                self.clone(),
                queue.clone(),
                permits.clone(),
                stop_rx.clone(),
            ));
        }
        tracing::info!(queues = ?self.queues, concurrency = self.concurrency, transport = self.transport.adapter(), "worker started");
        shutdown.await;
        let _ = stop_tx.send(true);
        while pollers.join_next().await.is_some() {}
        // Every permit back means every running task has settled its message.
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await;
        tracing::info!("worker stopped");
    }
}

async fn poll(
    worker: Worker,
    queue: String,
    permits: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let first = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        // Take what else is free too (up to this queue's share, so a quiet queue blocking
        // in receive cannot hold every permit), and ask for that many messages at once.
        let share = (worker.concurrency / worker.queues.len().max(1)).clamp(1, MAX_BATCH);
        let mut held = vec![first];
        while held.len() < share {
            match permits.clone().try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        let wait = worker.idle_wait();
        let asked = tokio::time::Instant::now();
        let received = tokio::select! {
            r = worker.transport.receive(&queue, held.len(), wait) => r,
            _ = stop.changed() => return,
        };
        match &received {
            Ok(_) => worker.status.received(&queue),
            Err(err) => worker.status.failed(&queue, err),
        }
        match received {
            Ok(deliveries) if deliveries.is_empty() => {
                // SQS waits in whole seconds, so a short wait is an instant empty answer:
                // pause for the rest of it, without the permits, rather than spin.
                drop(held);
                tokio::select! {
                    () = tokio::time::sleep_until(asked + wait) => {}
                    _ = stop.changed() => return,
                }
            }
            Ok(deliveries) => {
                // One permit travels with each running task; unused ones are released here.
                for (delivery, permit) in deliveries.into_iter().zip(held.drain(..)) {
                    let worker = worker.clone();
                    tokio::spawn(async move {
                        worker.settle(delivery).await;
                        drop(permit);
                    });
                }
            }
            Err(err) => {
                drop(held);
                tracing::warn!(queue = %queue, error = %err, "receive failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Worker {
    /// How long a receive may wait for a message while its poller holds a permit.
    ///
    /// A poller takes its permits before it receives, so no message is ever taken that
    /// cannot start at once; the price is that an idle receive keeps them. With more queues
    /// than permits some poller is always waiting for one, and a long wait here would delay
    /// that queue's tasks by as long (a second, measured under `celeriac dev` before it
    /// ran one permit per queue): then the wait is short, so the permits go round.
    fn idle_wait(&self) -> Duration {
        if self.queues.len() > self.concurrency {
            CONTENDED_WAIT
        } else {
            IDLE_WAIT
        }
    }

    async fn settle(&self, delivery: Delivery) {
        let outcome = self
            .runner
            .execute(&delivery.body, delivery.delivery, None)
            .await;
        let settled = match &outcome {
            Outcome::Ack => self.transport.ack(&delivery).await,
            Outcome::Retry(delay) => self.transport.retry(&delivery, *delay).await,
            Outcome::Defer { delay, priority } => {
                let body = String::from_utf8_lossy(&delivery.body);
                match self
                    .transport
                    .send(&delivery.queue, &body, *priority, *delay)
                    .await
                {
                    Ok(()) => self.transport.ack(&delivery).await,
                    Err(err) => Err(err),
                }
            }
            Outcome::Dead(reason) => self.transport.dead_letter(&delivery, reason).await,
        };
        if let Err(err) = settled {
            // The message comes back after its visibility timeout: at least once, not lost.
            tracing::warn!(error = %err, ?outcome, "could not settle message; it will be redelivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_failing_three_receives_in_a_row_is_reported_until_one_works() {
        let status = PollerStatus::new("redis-streams");
        status.received("main-queue");
        let refused = TransportError::Unavailable("Connection refused (os error 111)".into());
        for _ in 1..FAILING_AFTER {
            status.failed("main-queue", &refused);
        }
        assert!(status.check().await.is_ok(), "a blip is not an outage");
        status.failed("main-queue", &refused);
        let err = status.check().await.expect_err("failing");
        assert_eq!(err.kind, ErrorKind::Refused);
        assert!(err.detail.contains("main-queue"), "{err}");
        status.received("main-queue");
        assert!(status.check().await.is_ok());
        assert_eq!(status.queues()["main-queue"].consecutive_failures, 0);
    }
}
