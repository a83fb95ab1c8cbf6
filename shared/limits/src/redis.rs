//! The Redis adapter: one Lua script per algorithm, one round trip and one key per check,
//! on the multiplexed connection of [`RedisKv`] (single node, cluster, TLS alike).
//!
//! Scripts go through `redis::Script` (EVALSHA, falling back to loading the script once
//! per node on NOSCRIPT). The key is [`Limit::storage_key`], which wraps the whole counter
//! identity in one `{hash tag}`; every write sets a TTL that ends when the counter would
//! be back to its initial state, so idle keys disappear by themselves.
//!
//! # Whose clock
//! Both scripts read the time with `TIME` on the Redis server instead of taking it from
//! the caller. Lambda instances' clocks drift apart by milliseconds or more; with caller
//! time, a sliding log written by a clock running late would keep entries another caller
//! has already trimmed, or trim entries still inside the window, and the quota would stop
//! being exact. The key lives on one primary, so every decision about it reads one clock.
//! Redis 7 replicates scripts by their effects, so a script may call `TIME` before it
//! writes; the replica receives the values written, not the script.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use celeriac_kv::RedisKv;
use redis::Script;

use crate::limit::gcra_interval;
use crate::{Algorithm, Decision, Limit, LimitError, LimitKey, RateLimiter};

/// How long a check may take before it counts as a failure (and the limit's
/// [`crate::FailurePolicy`] decides). A healthy check is well under a millisecond; this
/// leaves room for a TLS reconnect without letting a stalled Redis stall every request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA. KEYS[1] holds the theoretical arrival time (TAT) in server microseconds.
/// ARGV: emission interval (µs), burst. Returns {allowed, remaining, reset µs, retry µs}.
/// `ahead` is how far the TAT would run ahead of now with this request; the request is
/// admitted while that stays within `burst` intervals.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local previous = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  previous = math.max(tonumber(stored) - now, 0)
end
local ahead = previous + interval
if ahead > tolerance then
  return {0, 0, previous, ahead - tolerance}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + ahead), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((tolerance - ahead) / interval), ahead, 0}
";

/// Exact sliding log. KEYS[1] is a sorted set of admitted requests scored by server
/// microseconds. ARGV: quota, window (µs), a member unique to this request (two requests
/// in the same microsecond must not collapse into one entry). Entries at or before
/// now - window have left the window. Returns {allowed, remaining, reset µs, retry µs}.
const SLIDING_LOG: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local quota = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < quota then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, quota - count - 1, window, 0}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return {0, 0, math.max(newest + window - now, 0), math.max(oldest + window - now, 0)}
";

/// The Redis adapter of [`RateLimiter`].
pub struct RedisLimiter {
    kv: Arc<RedisKv>,
    timeout: Duration,
    gcra: Script,
    sliding_log: Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("adapter", &self.adapter())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisLimiter {
    /// A limiter on `kv`'s connection, with [`DEFAULT_TIMEOUT`].
    pub fn new(kv: Arc<RedisKv>) -> Self {
        Self {
            kv,
            timeout: DEFAULT_TIMEOUT,
            gcra: Script::new(GCRA),
            sliding_log: Script::new(SLIDING_LOG),
        }
    }

    /// The same limiter giving up on a check (connecting included) after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, LimitError>>,
    ) -> Result<T, LimitError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                LimitError::Unavailable(format!("no answer from redis within {:?}", self.timeout))
            })?
    }
}

fn redis_error(err: &redis::RedisError) -> LimitError {
    celeriac_kv::redis::classify(err).into()
}

fn duration(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    fn adapter(&self) -> &'static str {
        celeriac_kv::KeyValue::adapter(&*self.kv)
    }

    async fn check(&self, limit: &Limit, key: &LimitKey) -> Result<Decision, LimitError> {
        limit.validate()?;
        let storage_key = limit.storage_key(key);
        let capacity = limit.algorithm.capacity();
        let reply: Vec<i64> = self
            .bounded(async {
                let mut conn = self.kv.connection().await?;
                let reply = match limit.algorithm {
                    Algorithm::Gcra {
                        rate,
                        period,
                        burst,
                    } => {
                        self.gcra
                            .key(&storage_key)
                            .arg(gcra_interval(period, rate).as_micros().to_string())
                            .arg(burst)
                            .invoke_async(&mut conn)
                            .await
                    }
                    Algorithm::SlidingLog { quota, window } => {
                        self.sliding_log
                            .key(&storage_key)
                            .arg(quota)
                            .arg(window.as_micros().to_string())
                            .arg(uuid::Uuid::new_v4().simple().to_string())
                            .invoke_async(&mut conn)
                            .await
                    }
                };
                reply.map_err(|e| redis_error(&e))
            })
            .await?;
        let &[allowed, remaining, reset_us, retry_us] = reply.as_slice() else {
            return Err(LimitError::Rejected(format!(
                "rate limit script answered {reply:?}"
            )));
        };
        Ok(Decision {
            allowed: allowed == 1,
            limit: capacity,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: duration(reset_us),
            retry_after: duration(retry_us),
        })
    }

    async fn reset(&self, limit: &Limit, key: &LimitKey) -> Result<(), LimitError> {
        let storage_key = limit.storage_key(key);
        self.bounded(async {
            let _: i64 = self.kv.query(redis::cmd("DEL").arg(&storage_key)).await?;
            Ok(())
        })
        .await
    }
}
