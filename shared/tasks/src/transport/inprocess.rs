//! The in-process transport: queues in memory, for `celeriac dev` and tests.
//!
//! It keeps the semantics of the real brokers: priorities, delays, a visibility timeout
//! after which an unacknowledged message is delivered again, delivery counts, and dead
//! letters that can be inspected.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Delivery, Transport, TransportError};

/// Priority of a message sent without one (the middle of 0..=9).
const DEFAULT_PRIORITY: u8 = 5;

#[derive(Debug, Clone)]
struct Message {
    seq: u64,
    body: Vec<u8>,
    priority: u8,
    deliveries: u32,
}

#[derive(Debug, Default)]
struct Queue {
    /// Highest priority first, then oldest first.
    ready: BTreeMap<(Reverse<u8>, u64), Message>,
    delayed: Vec<(Instant, Message)>,
    in_flight: HashMap<String, (Instant, Message)>,
    dead: Vec<(Vec<u8>, String)>,
}

impl Queue {
    fn make_ready(&mut self, message: Message) {
        self.ready
            .insert((Reverse(message.priority), message.seq), message);
    }

    /// Moves due delayed messages and timed-out deliveries back to ready; returns when the
    /// next one falls due.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.delayed = later;
        for (_, message) in due {
            self.make_ready(message);
        }
        let expired: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(receipt, _)| receipt.clone())
            .collect();
        for receipt in expired {
            if let Some((_, message)) = self.in_flight.remove(&receipt) {
                self.make_ready(message);
            }
        }
        self.delayed
            .iter()
            .map(|(at, _)| *at)
            .chain(self.in_flight.values().map(|(until, _)| *until))
            .min()
    }
}

/// Queues in this process.
#[derive(Debug)]
pub struct InProcess {
    queues: Mutex<HashMap<String, Queue>>,
    arrived: Notify,
    visibility: Duration,
    seq: AtomicU64,
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl InProcess {
    /// Unacknowledged messages come back after `visibility`.
    pub fn new(visibility: Duration) -> Self {
        Self {
            queues: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
            visibility,
            seq: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        // Every update is a few map operations that cannot panic half-way.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dead letters of `queue`: bodies and reasons.
    pub fn dead_letters(&self, queue: &str) -> Vec<(Vec<u8>, String)> {
        self.lock()
            .get(queue)
            .map(|q| q.dead.clone())
            .unwrap_or_default()
    }

    fn take(&self, queue: &str, max: usize) -> (Vec<Delivery>, Option<Instant>) {
        let now = Instant::now();
        let mut queues = self.lock();
        let q = queues.entry(queue.to_owned()).or_default();
        let next_due = q.promote(now);
        let mut out = Vec::new();
        while out.len() < max {
            let Some((_, mut message)) = q.ready.pop_first() else {
                break;
            };
            message.deliveries += 1;
            let receipt = format!("{}-{}", message.seq, message.deliveries);
            out.push(Delivery {
                queue: queue.to_owned(),
                body: message.body.clone(),
                receipt: receipt.clone(),
                delivery: message.deliveries,
            });
            q.in_flight
                .insert(receipt, (now + self.visibility, message));
        }
        (out, next_due)
    }

    fn settle(&self, delivery: &Delivery) -> Option<Message> {
        let mut queues = self.lock();
        let q = queues.get_mut(&delivery.queue)?;
        q.in_flight.remove(&delivery.receipt).map(|(_, m)| m)
    }
}

fn stale(delivery: &Delivery) -> TransportError {
    TransportError::Rejected(format!(
        "receipt {} is no longer valid (its visibility timeout passed)",
        delivery.receipt
    ))
}

#[async_trait]
impl Transport for InProcess {
    fn adapter(&self) -> &'static str {
        "inprocess"
    }

    async fn send(
        &self,
        queue: &str,
        body: &str,
        priority: Option<u8>,
        delay: Duration,
    ) -> Result<(), TransportError> {
        let message = Message {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            body: body.as_bytes().to_vec(),
            priority: priority.unwrap_or(DEFAULT_PRIORITY).min(9),
            deliveries: 0,
        };
        {
            let mut queues = self.lock();
            let q = queues.entry(queue.to_owned()).or_default();
            if delay.is_zero() {
                q.make_ready(message);
            } else {
                q.delayed.push((Instant::now() + delay, message));
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        let give_up = Instant::now() + wait;
        loop {
            // Register interest before looking, so a send between look and wait is not missed.
            let arrived = self.arrived.notified();
            let (deliveries, next_due) = self.take(queue, max.max(1));
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = Instant::now();
            if now >= give_up {
                return Ok(Vec::new());
            }
            let until = next_due.map_or(give_up, |d| d.min(give_up));
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), TransportError> {
        self.settle(delivery)
            .map(|_| ())
            .ok_or_else(|| stale(delivery))
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), TransportError> {
        let message = self.settle(delivery).ok_or_else(|| stale(delivery))?;
        self.lock()
            .entry(delivery.queue.clone())
            .or_default()
            .delayed
            .push((Instant::now() + delay, message));
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), TransportError> {
        let message = self.settle(delivery).ok_or_else(|| stale(delivery))?;
        self.lock()
            .entry(delivery.queue.clone())
            .or_default()
            .dead
            .push((message.body, reason.to_owned()));
        Ok(())
    }
}
