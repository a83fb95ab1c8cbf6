//! The adapters a deployment runs on, chosen from configuration once at init.
//!
//! On Lambda, what is not configured is reported as not configured. Under `celeriac dev`
//! ([`Defaults::Embedded`]) what is not configured is replaced by its embedded default:
//! the in-memory store, the in-process queue, the in-memory database and the local LLM
//! engine. Setting `REDIS_URL`, `DATABASE_URL`, `TASK_QUEUE_URL` or `LLM_PROVIDER` switches
//! either one to the real adapter.

use std::sync::Arc;
use std::time::Duration;

use celeriac_cache::{Cache, CacheConfig};
use celeriac_db::{PgPool, PgProbe};
use celeriac_kv::{KvProbe, MemoryKv, RedisKv, SharedKv};
use celeriac_limits::{MemoryLimiter, RedisLimiter, SharedLimiter};
use celeriac_llm::{BedrockLlm, BedrockSettings, CachedLlm, LocalEngine, SharedLlm};
use celeriac_platform::Config;
use celeriac_platform::config::{LlmConfig, QueueConfig};
use celeriac_platform::health::{Embedded, HealthCheck, Probe};
use celeriac_tasks::{RedisStreams, SqsProbe, SqsTransport, TaskClient, TaskStore, Transport};

/// What stands in for a component that is not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// Nothing: the component is absent (a Lambda function).
    NotConfigured,
    /// The embedded adapter (the dev runner).
    Embedded,
}

/// The database a deployment uses.
#[derive(Debug, Clone)]
pub enum Database {
    /// PostgreSQL.
    Postgres(PgPool),
    /// The in-memory adapters of each app's repositories.
    Memory,
}

/// Every adapter a function may use, opened once per execution environment.
#[derive(Debug, Clone)]
pub struct Adapters {
    /// Key-value store (Redis or memory).
    pub kv: Option<SharedKv>,
    /// The same store when it is Redis, for ports with their own scripts (rate limits,
    /// streams) over its connection.
    pub redis: Option<Arc<RedisKv>>,
    /// Rate limits: on Redis when it is configured, else in memory under the dev runner.
    pub limiter: Option<SharedLimiter>,
    sdk: Option<aws_config::SdkConfig>,
    /// Database.
    pub database: Option<Database>,
    queue_probe: Option<Arc<dyn Probe>>,
    llm_probe: Option<Arc<dyn Probe>>,
    /// The language model (Bedrock, or the local engine under the dev runner or with
    /// `LLM_PROVIDER=local`), its answers cached by content hash in the key-value store
    /// when there is one.
    pub llm: Option<SharedLlm>,
}

impl Adapters {
    /// Opens what `config` names (connections are opened and checked now, so requests do not
    /// pay for them) and fills the rest according to `defaults`. Fails only on configuration
    /// errors; a dependency that is down is reported by health and retried on use.
    pub async fn open(config: &Config, defaults: Defaults) -> anyhow::Result<Self> {
        let embedded = defaults == Defaults::Embedded;
        let redis = match &config.redis {
            Some(redis) => Some(Arc::new(RedisKv::open(redis).await?)),
            None => None,
        };
        let kv: Option<SharedKv> = match &redis {
            Some(redis) => Some(redis.clone()),
            None if embedded => Some(Arc::new(MemoryKv::new())),
            None => None,
        };
        let limiter: Option<SharedLimiter> = match &redis {
            Some(redis) => Some(Arc::new(RedisLimiter::new(redis.clone()))),
            None if embedded => Some(Arc::new(MemoryLimiter::new())),
            None => None,
        };
        let database = match &config.database {
            Some(db) => Some(Database::Postgres(celeriac_db::connect(db).await?)),
            None if embedded => Some(Database::Memory),
            None => None,
        };
        // The SDK config is loaded only when an AWS client is needed: it costs init time.
        let needs_aws = matches!(config.queue, QueueConfig::Sqs { .. })
            || matches!(config.llm, LlmConfig::Bedrock { .. });
        let sdk = if needs_aws {
            Some(celeriac_platform::aws::load().await?)
        } else {
            None
        };
        let queue_probe: Option<Arc<dyn Probe>> = match (&config.queue, &sdk, &kv) {
            (QueueConfig::Sqs { queue_url }, Some(sdk), _) => {
                Some(Arc::new(SqsProbe::new(sdk, queue_url.clone())))
            }
            (QueueConfig::RedisStreams, _, Some(kv)) => Some(Arc::new(KvProbe(kv.clone()))),
            (QueueConfig::InProcess, _, _) => Some(Arc::new(Embedded("inprocess"))),
            (QueueConfig::None, _, _) if embedded => Some(Arc::new(Embedded("inprocess"))),
            _ => None,
        };
        let (llm, llm_probe) = open_llm(config, sdk.as_ref(), kv.as_ref(), embedded);
        Ok(Self {
            kv,
            redis,
            limiter,
            sdk,
            database,
            queue_probe,
            llm_probe,
            llm,
        })
    }

    /// The PostgreSQL pool, when the database is PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.database {
            Some(Database::Postgres(pool)) => Some(pool),
            _ => None,
        }
    }

    /// A client that enqueues on the configured broker (SQS or Redis Streams) as
    /// `origin`, recording PENDING states in the key-value store. `None` for the in-process
    /// queue, which only the dev runner (holding its worker's client) can reach.
    pub fn task_client(&self, config: &Config, origin: &str) -> Option<TaskClient> {
        let transport: Arc<dyn Transport> = match (&config.queue, &self.sdk, &self.redis) {
            (QueueConfig::Sqs { .. }, Some(sdk), _) => {
                Arc::new(SqsTransport::new(sdk, config.task_queue_prefix.clone()))
            }
            (QueueConfig::RedisStreams, _, Some(redis)) => Arc::new(RedisStreams::new(
                redis.clone(),
                config.redis.clone()?,
                origin,
                // A producer never consumes, so the visibility timeout is never used.
                Duration::from_secs(30),
            )),
            _ => return None,
        };
        // Without a store the task still runs; only its PENDING record has nowhere to go.
        let kv = self
            .kv
            .clone()
            .unwrap_or_else(|| Arc::new(MemoryKv::new()) as SharedKv);
        Some(TaskClient::new(transport, TaskStore::new(kv), origin))
    }

    /// The health check over database, redis, queue and llm, each probed at most once per
    /// `HEALTH_INTERVAL_MS` however often health is asked (the model more rarely, see
    /// [`BedrockLlm::probe`]).
    pub fn health_check(&self, config: &Config) -> HealthCheck {
        let database: Option<Arc<dyn Probe>> = match &self.database {
            Some(Database::Postgres(pool)) => Some(Arc::new(PgProbe(pool.clone()))),
            Some(Database::Memory) => Some(Arc::new(Embedded("memory"))),
            None => None,
        };
        let redis: Option<Arc<dyn Probe>> = self
            .kv
            .as_ref()
            .map(|kv| Arc::new(KvProbe(kv.clone())) as Arc<dyn Probe>);
        HealthCheck::new(config.health_timeout)
            .interval(config.health_interval)
            .component("database", database)
            .component("redis", redis)
            .component("queue", self.queue_probe.clone())
            .component("llm", self.llm_probe.clone())
    }
}

/// The local engine: in-process, so a call takes no noticeable time.
fn local() -> (SharedLlm, Arc<dyn Probe>, Duration) {
    (
        Arc::new(LocalEngine::new()),
        Arc::new(Embedded("local")),
        Duration::ZERO,
    )
}

/// The configured model and its health probe. The model is cached by content hash in `kv`
/// when there is one; the cache's refresh lock outlasts a model call, so concurrent callers
/// with the same input wait for one call instead of each paying for one.
fn open_llm(
    config: &Config,
    sdk: Option<&aws_config::SdkConfig>,
    kv: Option<&SharedKv>,
    embedded: bool,
) -> (Option<SharedLlm>, Option<Arc<dyn Probe>>) {
    let model_interval = config.health_model_interval;
    let config = &config.llm;
    // The refresh lock covers the slowest call the adapter can make.
    let bedrock = BedrockSettings::from_config(config);
    let (model, probe, refresh_lock): (SharedLlm, Arc<dyn Probe>, Duration) = match (bedrock, sdk) {
        (Some(settings), Some(sdk)) => {
            let bedrock = BedrockLlm::new(sdk, settings);
            let probe = Arc::new(bedrock.probe(model_interval));
            let slowest = bedrock.settings().slowest_call();
            (Arc::new(bedrock), probe, slowest)
        }
        _ if *config == LlmConfig::Local => local(),
        _ if *config == LlmConfig::None && embedded => local(),
        _ => return (None, None),
    };
    let model: SharedLlm = match kv {
        Some(kv) => Arc::new(CachedLlm::new(
            model,
            Cache::new(
                kv.clone(),
                CacheConfig {
                    refresh_lock: refresh_lock.max(Duration::from_secs(60)),
                    ..CacheConfig::default()
                },
            ),
            celeriac_llm::cached::DEFAULT_TTL,
        )),
        None => model,
    };
    (Some(model), Some(probe))
}
