//! Redis adapter: single node, cluster, TLS; one multiplexed connection per process.
//!
//! [`RedisKv::open`] builds the client from [`RedisConfig`], opens the connection and pings
//! it during init, so the first request does not pay for the handshake. If Redis is down
//! at init the function still starts (a cache that is down is a miss, not an outage): the
//! connection is opened again on the next use. Once open, the single-node connection
//! (a `ConnectionManager`) and the cluster connection reconnect by themselves.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use celeriac_platform::config::{RedisConfig, RedisTopology};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use secrecy::ExposeSecret;

use crate::{KeyValue, KvError, Swap};

/// A connection to a single node or to a cluster; cheap to clone (both are handles to one
/// multiplexed connection).
#[derive(Clone)]
pub enum RedisConnection {
    /// Single node, reconnecting.
    Single(ConnectionManager),
    /// Cluster, following slot moves and reconnecting.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

// One per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Client {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// Configuration problems found before any connection is tried: never retryable.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The CA file named by `REDIS_CA_FILE` cannot be read.
    #[error("cannot read REDIS_CA_FILE {path}: {source}")]
    CaFile {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URL or node list is not usable.
    #[error("invalid Redis configuration: {0}")]
    Invalid(String),
}

/// The Redis adapter of [`KeyValue`].
pub struct RedisKv {
    client: Client,
    config: RedisConfig,
    connection: Mutex<Option<RedisConnection>>,
    // One reconnect at a time: concurrent requests after an outage wait for it.
    reconnect: tokio::sync::Mutex<()>,
    compare_and_swap: redis::Script,
}

/// One key, so cluster-safe. ARGV: expected present (1/0), expected, new, TTL in ms (0:
/// none). Replies `{1}` when swapped, else `{0, current}` (`current` absent when the key is).
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '1' then matches = (current == ARGV[2]) else matches = (current == false) end
if not matches then
  if current == false then return {0} end
  return {0, current}
end
if ARGV[4] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return {1}
";

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv")
            .field("adapter", &self.adapter())
            .finish()
    }
}

/// Classifies a Redis error: connection trouble, loading, failover and cluster moves can pass
/// (retryable); a server error about the request itself cannot.
pub fn classify(err: &redis::RedisError) -> KvError {
    // Connection-level problems can pass; a server error about this request cannot.
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::MasterDown
            )
        )
    {
        KvError::Unavailable(err.to_string())
    } else {
        KvError::Rejected(err.to_string())
    }
}

impl RedisKv {
    /// Builds the client and tries to connect and ping within the connect timeout. A
    /// failed connection is logged and retried on first use; only configuration errors fail.
    pub async fn open(config: &RedisConfig) -> Result<Self, RedisSetupError> {
        let certs = match &config.ca_file {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(
                    std::fs::read(path).map_err(|source| RedisSetupError::CaFile {
                        path: path.display().to_string(),
                        source,
                    })?,
                ),
            }),
            None => None,
        };
        let invalid = |e: redis::RedisError| RedisSetupError::Invalid(e.to_string());
        let client = match &config.topology {
            RedisTopology::Single(url) => {
                let url = url.expose_secret();
                Client::Single(match certs {
                    Some(certs) => redis::Client::build_with_tls(url, certs).map_err(invalid)?,
                    None => redis::Client::open(url).map_err(invalid)?,
                })
            }
            RedisTopology::Cluster(nodes) => {
                let mut builder =
                    ClusterClientBuilder::new(nodes.iter().map(|n| n.expose_secret().to_owned()))
                        .connection_timeout(config.connect_timeout)
                        .response_timeout(config.response_timeout)
                        .retries(2);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                Client::Cluster(builder.build().map_err(invalid)?)
            }
        };
        let kv = Self {
            client,
            config: config.clone(),
            connection: Mutex::new(None),
            reconnect: tokio::sync::Mutex::new(()),
            compare_and_swap: redis::Script::new(COMPARE_AND_SWAP),
        };
        match kv.ping().await {
            Ok(()) => tracing::info!(adapter = kv.adapter(), "redis connected"),
            Err(err) => {
                tracing::warn!(adapter = kv.adapter(), error = %err, "redis not reachable at init; will retry on use")
            }
        }
        Ok(kv)
    }

    /// The shared connection, opened if needed. Other ports built on Redis (rate limits,
    /// streams) use it to run their own commands over the same multiplexed connection.
    pub async fn connection(&self) -> Result<RedisConnection, KvError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _one_at_a_time = self.reconnect.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let conn = tokio::time::timeout(self.config.connect_timeout * 2, self.connect())
            .await
            .map_err(|_| KvError::Unavailable("timed out connecting to redis".into()))??;
        *self.slot() = Some(conn.clone());
        Ok(conn)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<RedisConnection>> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> Option<RedisConnection> {
        self.slot().clone()
    }

    async fn connect(&self) -> Result<RedisConnection, KvError> {
        match &self.client {
            Client::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(Some(self.config.response_timeout))
                    .set_number_of_retries(3)
                    .set_max_delay(Duration::from_secs(2));
                client
                    .get_connection_manager_with_config(config)
                    .await
                    .map(RedisConnection::Single)
                    .map_err(|e| classify(&e))
            }
            Client::Cluster(client) => client
                .get_async_connection()
                .await
                .map(RedisConnection::Cluster)
                .map_err(|e| classify(&e)),
        }
    }

    /// Runs one command on the shared connection.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, KvError> {
        let mut conn = self.connection().await?;
        cmd.query_async(&mut conn).await.map_err(|e| classify(&e))
    }
}

fn px(ttl: Duration) -> u64 {
    // Redis refuses PX 0; a sub-millisecond TTL means "expire at once", which 1 ms is.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl KeyValue for RedisKv {
    fn adapter(&self) -> &'static str {
        match self.client {
            Client::Single(_) => "redis",
            Client::Cluster(_) => "redis-cluster",
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        self.query::<()>(&cmd).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        let reply: Option<String> = self.query(&cmd).await?;
        Ok(reply.is_some())
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
        ttl: Option<Duration>,
    ) -> Result<Swap, KvError> {
        let mut conn = self.connection().await?;
        let mut invocation = self.compare_and_swap.key(key);
        invocation
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(ttl.map_or(0, px));
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(&e))?;
        match reply.as_slice() {
            [Value::Int(1)] => Ok(Swap::Swapped),
            [Value::Int(0)] => Ok(Swap::Current(None)),
            [Value::Int(0), current] => redis::from_redis_value_ref(current)
                .map(|bytes| Swap::Current(Some(bytes)))
                .map_err(|e| KvError::Rejected(e.to_string())),
            other => Err(KvError::Rejected(format!(
                "unexpected compare-and-swap reply {other:?}"
            ))),
        }
    }

    async fn set_if_present(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("XX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(px(ttl));
        }
        let reply: Option<String> = self.query(&cmd).await?;
        Ok(reply.is_some())
    }

    async fn get_and_refresh(&self, key: &str, ttl: Duration) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GETEX").arg(key).arg("PX").arg(px(ttl)))
            .await
    }

    async fn set_add(&self, key: &str, members: &[&str], ttl: Duration) -> Result<(), KvError> {
        // SADD without members is a syntax error; adding nothing changes nothing.
        if members.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        // One key, so MULTI is cluster-safe. NX gives a new set its TTL, GT extends a
        // shorter one; together: "at least ttl", never shortened (Redis 7).
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(key)
            .arg(members)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(px(ttl))
            .arg("NX")
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(px(ttl))
            .arg("GT")
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| classify(&e))
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, KvError> {
        self.query(redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn set_remove(&self, key: &str, members: &[&str]) -> Result<usize, KvError> {
        if members.is_empty() {
            return Ok(0);
        }
        self.query(redis::cmd("SREM").arg(key).arg(members)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        // One key, so MULTI is cluster-safe; PEXPIRE NX (Redis 7) keeps an existing window.
        pipe.atomic().cmd("INCRBY").arg(key).arg(by);
        if let Some(ttl) = ttl {
            pipe.cmd("PEXPIRE").arg(key).arg(px(ttl)).arg("NX").ignore();
        }
        let (value,): (i64,) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(&e))?;
        Ok(value)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, KvError> {
        let ms: i64 = self.query(redis::cmd("PTTL").arg(key)).await?;
        // -2: no such key; -1: no expiry.
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn ping(&self) -> Result<(), KvError> {
        let reply: String = self.query(&redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(KvError::Rejected(format!(
                "unexpected PING reply {reply:?}"
            )))
        }
    }
}
