//! The Redis Streams transport: `celeriac worker` over ElastiCache-compatible Redis.
//!
//! Per queue, three keys share one hash slot (`celeriac:{q:<queue>}:...`), so every
//! multi-key step is one atomic script even on a cluster:
//! - `:stream`, read by the consumer group `celeriac`; a message stays pending until
//!   acknowledged, and one left idle past the visibility timeout (its worker died) is
//!   claimed by another consumer, its delivery count going up;
//! - `:delayed`, a sorted set by due time for countdowns, ETAs and retry backoff, moved
//!   into the stream when due;
//! - `:dead`, a stream of messages that will not be delivered again, with the reason.
//!
//! Enqueue is one `XADD` (or one `ZADD` when delayed): one round trip.
//!
//! A Redis that comes back without its data (restarted without persistence, failed over
//! to an empty replica, flushed) has lost the consumer group, and a producer's `XADD` may
//! already have recreated the stream without it: every group command then fails with
//! `NOGROUP`. Any such failure makes the transport forget the group and create it again
//! (`XGROUP CREATE ... 0 MKSTREAM`) within the same receive, so the worker goes on by
//! itself. What was queued or in flight at the wipe is gone; see the README.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use celeriac_kv::{KvError, RedisKv};
use celeriac_platform::config::RedisConfig;
use redis::streams::{StreamPendingCountReply, StreamReadReply};

use super::{Delivery, Transport, TransportError};

/// Longest single blocking read: delayed and abandoned messages wait at most this long
/// past their time.
const ROUND: Duration = Duration::from_millis(250);

/// How long a receive that found part of what it asked for waits for more (see
/// [`RedisStreams::with_linger`]): measured on the bench, 1 ms raised end-to-end throughput
/// by a third for a few milliseconds of start latency.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

/// Consumer group every worker joins.
pub const GROUP: &str = "celeriac";

fn stream_key(queue: &str) -> String {
    format!("celeriac:{{q:{queue}}}:stream")
}

fn delayed_key(queue: &str) -> String {
    format!("celeriac:{{q:{queue}}}:delayed")
}

fn dead_key(queue: &str) -> String {
    format!("celeriac:{{q:{queue}}}:dead")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

fn kv_error(err: KvError) -> TransportError {
    match err {
        KvError::Unavailable(m) => TransportError::Unavailable(m),
        KvError::Rejected(m) => TransportError::Rejected(m),
    }
}

fn redis_error(err: &redis::RedisError) -> TransportError {
    kv_error(celeriac_kv::redis::classify(err))
}

/// Whether `err` says the stream's consumer group does not exist (Redis lost its data).
fn is_no_group(err: &redis::RedisError) -> bool {
    err.code() == Some("NOGROUP")
}

/// Moves due members of the delayed set into the stream. A member is
/// `<deliveries>|<unique>|<body>`; the stream entry keeps the body and the count.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  local first = string.find(member, '|', 1, true)
  local second = string.find(member, '|', first + 1, true)
  redis.call('XADD', KEYS[2], '*', 'd', string.sub(member, 1, first - 1), 'b', string.sub(member, second + 1))
  redis.call('ZREM', KEYS[1], member)
end
return #due
";

/// Settles a delivery: acknowledges and deletes the entry, then optionally puts the body
/// in the delayed set (retry) or the dead stream. Atomic, so a crash cannot lose or
/// duplicate it between the two steps.
const SETTLE: &str = r"
-- Not pending any more: another consumer claimed and settled it. Do nothing twice.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
elseif ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'b', ARGV[5], 'reason', ARGV[4])
end
return 1
";

/// The Redis Streams adapter of [`Transport`].
#[derive(Debug)]
pub struct RedisStreams {
    kv: Arc<RedisKv>,
    /// Where to open reader connections.
    config: RedisConfig,
    /// One connection per queue for blocking reads: a `BLOCK` stalls every command behind
    /// it on its connection, the shared one and other queues' reads alike.
    readers: tokio::sync::Mutex<std::collections::HashMap<String, Arc<RedisKv>>>,
    consumer: String,
    visibility: Duration,
    block: Duration,
    groups: Mutex<HashSet<String>>,
    /// When each queue's delayed set and abandoned deliveries were last looked at: once
    /// per round is enough, and skipping them keeps a busy receive to one round trip.
    housekeeping: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    promote: redis::Script,
    settle: redis::Script,
    /// How long a receive that found some but not all it asked for waits for more.
    linger: Duration,
}

impl RedisStreams {
    /// A transport on `kv` as consumer `consumer`, opening a reader connection per queue
    /// from `config`; deliveries idle past `visibility` are reclaimed by other consumers.
    pub fn new(
        kv: Arc<RedisKv>,
        config: RedisConfig,
        consumer: impl Into<String>,
        visibility: Duration,
    ) -> Self {
        let response_timeout = config.response_timeout;
        Self {
            kv,
            config,
            readers: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            consumer: consumer.into(),
            visibility,
            // Stay under the connection's response timeout, or a quiet queue looks like an outage.
            block: response_timeout
                .saturating_sub(Duration::from_millis(250))
                .max(Duration::from_millis(50)),
            groups: Mutex::new(HashSet::new()),
            housekeeping: Mutex::new(std::collections::HashMap::new()),
            promote: redis::Script::new(PROMOTE),
            settle: redis::Script::new(SETTLE),
            linger: DEFAULT_LINGER,
        }
    }

    /// Batches receives under load: a receive that found fewer messages than it asked
    /// for waits `linger` once and takes what arrived meanwhile (a millisecond turns a
    /// stream of single-message reads into batches; the cost is that much start latency).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    async fn ensure_group(&self, queue: &str) -> Result<(), TransportError> {
        if self.group_known(queue) {
            return Ok(());
        }
        let mut conn = self.kv.connection().await.map_err(kv_error)?;
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream_key(queue))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(redis_error(&e)),
        }
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue.to_owned());
        Ok(())
    }

    fn group_known(&self, queue: &str) -> bool {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(queue)
    }

    /// The error of a command on `queue`'s group; a `NOGROUP` also forgets the group, so
    /// the next [`Self::ensure_group`] creates it again.
    fn group_error(&self, queue: &str, err: &redis::RedisError) -> TransportError {
        if is_no_group(err) {
            self.groups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(queue);
        }
        redis_error(err)
    }

    /// One [`Self::receive_once`]; when it failed because the group is gone, the group is
    /// created again and the round tried once more, so a wiped Redis costs one round trip,
    /// not a failed receive.
    async fn receive_round(
        &self,
        queue: &str,
        max: usize,
        give_up: tokio::time::Instant,
    ) -> Result<Vec<Delivery>, TransportError> {
        match self.receive_once(queue, max, give_up).await {
            Err(err) if !self.group_known(queue) => {
                tracing::warn!(
                    queue,
                    error = %err,
                    "consumer group missing (Redis lost its data?); creating it again"
                );
                self.ensure_group(queue).await?;
                self.receive_once(queue, max, give_up).await
            }
            other => other,
        }
    }

    fn member(deliveries: u32, body: &str) -> String {
        format!("{deliveries}|{}|{body}", uuid::Uuid::new_v4().simple())
    }

    async fn settle_as(
        &self,
        delivery: &Delivery,
        action: &str,
        score_or_reason: &str,
        body: &str,
    ) -> Result<(), TransportError> {
        let mut conn = self.kv.connection().await.map_err(kv_error)?;
        let _: i64 = self
            .settle
            .key(stream_key(&delivery.queue))
            .key(delayed_key(&delivery.queue))
            .key(dead_key(&delivery.queue))
            .arg(GROUP)
            .arg(&delivery.receipt)
            .arg(action)
            .arg(score_or_reason)
            .arg(body)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error(&e))?;
        Ok(())
    }

    /// One round of: due delayed messages into the stream, reclaim of abandoned deliveries,
    /// then a read that blocks for a short while (so delayed and abandoned messages are
    /// looked at again soon).
    async fn receive_once(
        &self,
        queue: &str,
        max: usize,
        give_up: tokio::time::Instant,
    ) -> Result<Vec<Delivery>, TransportError> {
        if self.housekeeping_due(queue) {
            {
                let mut conn = self.kv.connection().await.map_err(kv_error)?;
                let _: i64 = self
                    .promote
                    .key(delayed_key(queue))
                    .key(stream_key(queue))
                    .arg(now_ms())
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis_error(&e))?;
            }
            let reclaimed = self.reclaim(queue, max).await?;
            if !reclaimed.is_empty() {
                return Ok(reclaimed);
            }
        }
        let remaining = give_up.saturating_duration_since(tokio::time::Instant::now());
        // BLOCK 0 would mean forever: at least 1 ms.
        let block = remaining
            .min(self.block)
            .min(ROUND)
            .max(Duration::from_millis(1));
        let mut reader = self
            .reader(queue)
            .await?
            .connection()
            .await
            .map_err(kv_error)?;
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(1))
            .arg("STREAMS")
            .arg(stream_key(queue))
            .arg(">")
            .query_async(&mut reader)
            .await
            .map_err(|e| self.group_error(queue, &e))?;
        Ok(reply
            .map(|r| {
                r.keys
                    .into_iter()
                    .flat_map(|k| k.ids)
                    .map(|entry| to_delivery(queue, &entry.id, &entry.map, 1))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn reader(&self, queue: &str) -> Result<Arc<RedisKv>, TransportError> {
        let mut readers = self.readers.lock().await;
        if let Some(reader) = readers.get(queue) {
            return Ok(reader.clone());
        }
        let reader = Arc::new(
            RedisKv::open(&self.config)
                .await
                .map_err(|e| TransportError::Rejected(e.to_string()))?,
        );
        readers.insert(queue.to_owned(), reader.clone());
        Ok(reader)
    }

    fn housekeeping_due(&self, queue: &str) -> bool {
        let now = tokio::time::Instant::now();
        let mut last = self
            .housekeeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.get(queue) {
            Some(at) if now.duration_since(*at) < ROUND => false,
            _ => {
                last.insert(queue.to_owned(), now);
                true
            }
        }
    }

    /// Claims deliveries idle past the visibility timeout (their worker died).
    async fn reclaim(&self, queue: &str, max: usize) -> Result<Vec<Delivery>, TransportError> {
        let mut conn = self.kv.connection().await.map_err(kv_error)?;
        let idle_ms = u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX);
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream_key(queue))
            .arg(GROUP)
            .arg("IDLE")
            .arg(idle_ms)
            .arg("-")
            .arg("+")
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.group_error(queue, &e))?;
        if pending.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut claim = redis::cmd("XCLAIM");
        claim
            .arg(stream_key(queue))
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(idle_ms);
        for p in &pending.ids {
            claim.arg(&p.id);
        }
        let claimed: redis::streams::StreamClaimReply = claim
            .query_async(&mut conn)
            .await
            .map_err(|e| self.group_error(queue, &e))?;
        Ok(claimed
            .ids
            .into_iter()
            .map(|entry| {
                // times_delivered counts deliveries through this group; the entry's own
                // count carries deliveries before a retry re-queued it.
                let before = pending
                    .ids
                    .iter()
                    .find(|p| p.id == entry.id)
                    .map_or(1, |p| p.times_delivered);
                to_delivery(
                    queue,
                    &entry.id,
                    &entry.map,
                    u32::try_from(before).unwrap_or(1) + 1,
                )
            })
            .collect())
    }
}

fn field(map: &std::collections::HashMap<String, redis::Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
}

/// `group_deliveries` counts deliveries of this stream entry (1 on a first read).
fn to_delivery(
    queue: &str,
    id: &str,
    map: &std::collections::HashMap<String, redis::Value>,
    group_deliveries: u32,
) -> Delivery {
    let earlier: u32 = field(map, "d").and_then(|d| d.parse().ok()).unwrap_or(0);
    Delivery {
        queue: queue.to_owned(),
        body: field(map, "b").unwrap_or_default().into_bytes(),
        receipt: id.to_owned(),
        delivery: earlier + group_deliveries,
    }
}

#[async_trait]
impl Transport for RedisStreams {
    fn adapter(&self) -> &'static str {
        "redis-streams"
    }

    async fn send(
        &self,
        queue: &str,
        body: &str,
        _priority: Option<u8>,
        delay: Duration,
    ) -> Result<(), TransportError> {
        // Streams have no per-message priority: priorities are separate queues.
        let mut conn = self.kv.connection().await.map_err(kv_error)?;
        let result: Result<redis::Value, redis::RedisError> = if delay.is_zero() {
            redis::cmd("XADD")
                .arg(stream_key(queue))
                .arg("*")
                .arg("d")
                .arg(0)
                .arg("b")
                .arg(body)
                .query_async(&mut conn)
                .await
        } else {
            let due = now_ms() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            redis::cmd("ZADD")
                .arg(delayed_key(queue))
                .arg(due)
                .arg(Self::member(0, body))
                .query_async(&mut conn)
                .await
        };
        result.map(|_| ()).map_err(|e| redis_error(&e))
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        self.ensure_group(queue).await?;
        let give_up = tokio::time::Instant::now() + wait;
        loop {
            let mut found = self.receive_round(queue, max, give_up).await?;
            if !found.is_empty() && found.len() < max && !self.linger.is_zero() {
                // A worker that keeps up would otherwise read one message per round trip
                // while the producer is mid-burst: wait a moment and take what arrived
                // meanwhile in the same turn.
                tokio::time::sleep(self.linger).await;
                let more = self
                    .receive_round(queue, max - found.len(), tokio::time::Instant::now())
                    .await?;
                found.extend(more);
            }
            if !found.is_empty() || tokio::time::Instant::now() >= give_up {
                return Ok(found);
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), TransportError> {
        self.settle_as(delivery, "ack", "", "").await
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), TransportError> {
        let due = now_ms() + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let body = String::from_utf8_lossy(&delivery.body);
        let member = Self::member(delivery.delivery, &body);
        self.settle_as(delivery, "retry", &due.to_string(), &member)
            .await
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), TransportError> {
        let body = String::from_utf8_lossy(&delivery.body);
        self.settle_as(delivery, "dead", reason, &body).await
    }
}
