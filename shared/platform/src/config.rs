//! Typed configuration, read once from the environment at init.
//!
//! Every setting a function reads lives here, so a misconfigured deployment fails at init
//! with the variable's name instead of at the first request. Values that grant access
//! (URLs with passwords, database URLs) are [`SecretString`]s: `Debug` prints them as
//! redacted, so a config can be logged whole.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Where configuration values come from: the process environment, or a map in tests.
pub trait EnvSource {
    /// The value of `key`, if set and not empty.
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// A setting that is present but unusable. Never retryable: the deployment must change.
#[derive(Debug, thiserror::Error)]
#[error("configuration variable {key} is invalid: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: &'static str,
    /// What is wrong with it (never its value, which may be a secret).
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` (an app's own settings use it too).
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// The whole configuration of a function or of the dev runner.
#[derive(Debug, Clone)]
pub struct Config {
    /// The function's name: `AWS_LAMBDA_FUNCTION_NAME` on Lambda, else the binary's name.
    pub service: String,
    /// Redis, when `REDIS_URL` or `REDIS_CLUSTER_NODES` is set; otherwise the in-memory store.
    pub redis: Option<RedisConfig>,
    /// PostgreSQL, when `DATABASE_URL` or `DATABASE_SECRET_ARN` is set.
    pub database: Option<DatabaseConfig>,
    /// The task queue.
    pub queue: QueueConfig,
    /// Prefix of every SQS queue name (`TASK_QUEUE_PREFIX`; the template uses the stack
    /// name): logical queue `main-queue` is the SQS queue `{prefix}main-queue`.
    pub task_queue_prefix: String,
    /// The language model.
    pub llm: LlmConfig,
    /// HTTP limits.
    pub http: HttpConfig,
    /// How long a health check waits for one component.
    pub health_timeout: Duration,
    /// How long a component's health result is reused before it is probed again
    /// (`HEALTH_INTERVAL_MS`, 10 s): health is public, so probes must not follow its traffic.
    pub health_interval: Duration,
    /// How long a model outcome answers for the model's health before the probe makes a
    /// one-token call of its own (`HEALTH_MODEL_INTERVAL_MS`, 5 min): each costs quota.
    pub health_model_interval: Duration,
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Single node or cluster, with the URLs (which may hold a password).
    pub topology: RedisTopology,
    /// A PEM CA bundle for `rediss://` servers whose certificate the system roots do not sign.
    pub ca_file: Option<PathBuf>,
    /// Bound on one command's round trip; a slower answer is an error (a cache miss).
    pub response_timeout: Duration,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
}

/// Single node, or a cluster reached through one or more seed nodes.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// `REDIS_URL` without `REDIS_CLUSTER=true`.
    Single(SecretString),
    /// `REDIS_CLUSTER_NODES` (comma separated), or `REDIS_URL` with `REDIS_CLUSTER=true`
    /// (an ElastiCache configuration endpoint).
    Cluster(Vec<SecretString>),
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Where the credentials come from.
    pub source: DatabaseSource,
    /// Pool size per execution environment: a Lambda serves one request at a time.
    pub max_connections: u32,
    /// Bound on acquiring a connection.
    pub connect_timeout: Duration,
}

/// A database URL, or an RDS-style Secrets Manager secret to read at init.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// `DATABASE_URL`.
    Url(SecretString),
    /// `DATABASE_SECRET_ARN`: JSON with username, password, host, port, dbname.
    SecretArn(String),
}

/// Which task transport carries tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueConfig {
    /// No transport configured.
    None,
    /// In process (the dev runner's embedded default).
    InProcess,
    /// Redis Streams on the configured Redis.
    RedisStreams,
    /// SQS, with the queue URL tasks are sent to by default.
    Sqs {
        /// `TASK_QUEUE_URL`.
        queue_url: String,
    },
}

/// Which language model answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmConfig {
    /// No model configured.
    None,
    /// The local keyword and extractive engine (offline, deterministic).
    Local,
    /// Amazon Bedrock through the Converse API.
    Bedrock {
        /// `BEDROCK_MODEL_ID`.
        model_id: String,
        /// `BEDROCK_ATTEMPT_TIMEOUT_MS`: bound on one model attempt; the adapter's default
        /// when unset. Functions behind API Gateway set it so that all attempts fit in its
        /// 29 s.
        attempt_timeout: Option<Duration>,
        /// `BEDROCK_MAX_ATTEMPTS`: attempts per call, the first included (at least 1); the
        /// adapter's default when unset.
        max_attempts: Option<u32>,
    },
}

/// A current Haiku-class model; the seed's Claude 3 Haiku is retired on Bedrock. The `us.`
/// cross-region inference profile is what on-demand Converse calls accept for this model.
pub const DEFAULT_BEDROCK_MODEL_ID: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";

/// HTTP limits shared by every function.
#[derive(Debug, Clone, Copy)]
pub struct HttpConfig {
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
        }
    }
}

impl Config {
    /// Reads the process environment. `default_service` names the function off Lambda.
    pub fn from_env(default_service: &str) -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv, default_service)
    }

    /// Reads any [`EnvSource`]; tests pass a map.
    pub fn from_source(env: &impl EnvSource, default_service: &str) -> Result<Self, ConfigError> {
        let redis = redis_config(env)?;
        let queue = match env.var("TASK_TRANSPORT").as_deref() {
            None => match env.var("TASK_QUEUE_URL") {
                Some(queue_url) => QueueConfig::Sqs { queue_url },
                None => QueueConfig::None,
            },
            Some("sqs") => QueueConfig::Sqs {
                queue_url: env.var("TASK_QUEUE_URL").ok_or_else(|| {
                    ConfigError::new("TASK_QUEUE_URL", "required when TASK_TRANSPORT=sqs")
                })?,
            },
            Some("redis") if redis.is_none() => {
                return Err(ConfigError::new(
                    "TASK_TRANSPORT",
                    "redis needs REDIS_URL or REDIS_CLUSTER_NODES",
                ));
            }
            Some("redis") => QueueConfig::RedisStreams,
            Some("inprocess" | "memory") => QueueConfig::InProcess,
            Some(other) => {
                return Err(ConfigError::new(
                    "TASK_TRANSPORT",
                    format!("expected sqs, redis or inprocess, got {other:?}"),
                ));
            }
        };
        let llm = match env.var("LLM_PROVIDER").as_deref() {
            None => LlmConfig::None,
            Some("local") => LlmConfig::Local,
            Some("bedrock") => LlmConfig::Bedrock {
                model_id: env
                    .var("BEDROCK_MODEL_ID")
                    .unwrap_or_else(|| DEFAULT_BEDROCK_MODEL_ID.to_owned()),
                attempt_timeout: parse_positive(env, "BEDROCK_ATTEMPT_TIMEOUT_MS")?
                    .map(Duration::from_millis),
                max_attempts: parse_positive(env, "BEDROCK_MAX_ATTEMPTS")?,
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "LLM_PROVIDER",
                    format!("expected bedrock or local, got {other:?}"),
                ));
            }
        };
        Ok(Self {
            service: env
                .var("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| default_service.to_owned()),
            redis,
            database: database_config(env)?,
            queue,
            task_queue_prefix: env.var("TASK_QUEUE_PREFIX").unwrap_or_default(),
            llm,
            http: HttpConfig {
                body_limit_bytes: parse_or(env, "HTTP_BODY_LIMIT_BYTES", 1024 * 1024)?,
            },
            health_timeout: Duration::from_millis(parse_or(env, "HEALTH_TIMEOUT_MS", 1500)?),
            health_interval: Duration::from_millis(parse_or(env, "HEALTH_INTERVAL_MS", 10_000)?),
            health_model_interval: Duration::from_millis(parse_or(
                env,
                "HEALTH_MODEL_INTERVAL_MS",
                300_000,
            )?),
        })
    }
}

fn redis_config(env: &impl EnvSource) -> Result<Option<RedisConfig>, ConfigError> {
    let cluster_flag = parse_bool(env, "REDIS_CLUSTER")?;
    let topology = match (env.var("REDIS_CLUSTER_NODES"), env.var("REDIS_URL")) {
        (Some(nodes), _) => {
            let nodes: Vec<SecretString> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| SecretString::from(n.to_owned()))
                .collect();
            nodes
                .iter()
                .try_for_each(|n| check_redis_url("REDIS_CLUSTER_NODES", n))?;
            RedisTopology::Cluster(nodes)
        }
        (None, Some(url)) => {
            let url = SecretString::from(url);
            check_redis_url("REDIS_URL", &url)?;
            if cluster_flag {
                RedisTopology::Cluster(vec![url])
            } else {
                RedisTopology::Single(url)
            }
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(RedisConfig {
        topology,
        ca_file: env.var("REDIS_CA_FILE").map(PathBuf::from),
        response_timeout: Duration::from_millis(parse_or(env, "REDIS_TIMEOUT_MS", 1000)?),
        connect_timeout: Duration::from_millis(parse_or(env, "REDIS_CONNECT_TIMEOUT_MS", 1000)?),
    }))
}

fn check_redis_url(key: &'static str, url: &SecretString) -> Result<(), ConfigError> {
    let url = url.expose_secret();
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            "must start with redis:// or rediss://",
        ))
    }
}

fn database_config(env: &impl EnvSource) -> Result<Option<DatabaseConfig>, ConfigError> {
    let source = match (env.var("DATABASE_URL"), env.var("DATABASE_SECRET_ARN")) {
        (Some(url), _) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with postgres:// or postgresql://",
                ));
            }
            DatabaseSource::Url(SecretString::from(url))
        }
        (None, Some(arn)) => DatabaseSource::SecretArn(arn),
        (None, None) => return Ok(None),
    };
    Ok(Some(DatabaseConfig {
        source,
        max_connections: parse_or(env, "DATABASE_MAX_CONNECTIONS", 2)?,
        connect_timeout: Duration::from_millis(parse_or(env, "DATABASE_CONNECT_TIMEOUT_MS", 2000)?),
    }))
}

fn parse_or<T: std::str::FromStr>(
    env: &impl EnvSource,
    key: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match env.var(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(key, format!("expected a number, got {raw:?}"))),
    }
}

/// An optional whole number above zero (a zero bound or attempt count would make every call
/// fail, so it is refused at start-up rather than discovered per request).
fn parse_positive<T>(env: &impl EnvSource, key: &'static str) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    let Some(raw) = env.var(key) else {
        return Ok(None);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= T::from(1) => Ok(Some(value)),
        _ => Err(ConfigError::new(
            key,
            format!("expected a whole number above zero, got {raw:?}"),
        )),
    }
}

fn parse_bool(env: &impl EnvSource, key: &'static str) -> Result<bool, ConfigError> {
    match env
        .var(key)
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(ConfigError::new(
            key,
            format!("expected true or false, got {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_environment_means_embedded_defaults() {
        let cfg = Config::from_source(&env(&[]), "health").expect("valid");
        assert_eq!(cfg.service, "health");
        assert!(cfg.redis.is_none());
        assert!(cfg.database.is_none());
        assert_eq!(cfg.queue, QueueConfig::None);
        assert_eq!(cfg.llm, LlmConfig::None);
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let cfg = Config::from_source(
            &env(&[
                ("REDIS_URL", "rediss://:hunter2@cache.example:6379"),
                ("DATABASE_URL", "postgres://app:s3cret-pw@db.example/app"),
            ]),
            "health",
        )
        .expect("valid");
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret-pw"), "{printed}");
    }

    #[test]
    fn cluster_from_node_list_or_flag() {
        let cfg = Config::from_source(
            &env(&[(
                "REDIS_CLUSTER_NODES",
                "redis://a:1, redis://b:2,redis://c:3",
            )]),
            "x",
        )
        .expect("valid");
        let Some(RedisConfig {
            topology: RedisTopology::Cluster(nodes),
            ..
        }) = cfg.redis
        else {
            panic!("expected a cluster");
        };
        assert_eq!(nodes.len(), 3);

        let cfg = Config::from_source(
            &env(&[
                ("REDIS_URL", "rediss://cfg.example:6379"),
                ("REDIS_CLUSTER", "true"),
            ]),
            "x",
        )
        .expect("valid");
        assert!(matches!(
            cfg.redis.map(|r| r.topology),
            Some(RedisTopology::Cluster(n)) if n.len() == 1
        ));
    }

    #[test]
    fn bad_values_name_the_variable_without_echoing_secrets() {
        let err = Config::from_source(&env(&[("REDIS_URL", "http://:pw@x")]), "x")
            .expect_err("not a redis url");
        assert_eq!(err.key, "REDIS_URL");
        assert!(!err.to_string().contains("pw@"));

        let err = Config::from_source(&env(&[("HEALTH_TIMEOUT_MS", "soon")]), "x")
            .expect_err("not a number");
        assert_eq!(err.key, "HEALTH_TIMEOUT_MS");

        let err = Config::from_source(&env(&[("TASK_TRANSPORT", "redis")]), "x")
            .expect_err("redis transport without redis");
        assert_eq!(err.key, "TASK_TRANSPORT");
    }

    #[test]
    fn queue_and_llm_selection() {
        let cfg = Config::from_source(
            &env(&[
                ("TASK_QUEUE_URL", "http://127.0.0.1:5000/000000000000/tasks"),
                ("LLM_PROVIDER", "bedrock"),
            ]),
            "x",
        )
        .expect("valid");
        assert!(matches!(cfg.queue, QueueConfig::Sqs { .. }));
        assert_eq!(
            cfg.llm,
            LlmConfig::Bedrock {
                model_id: DEFAULT_BEDROCK_MODEL_ID.to_owned(),
                attempt_timeout: None,
                max_attempts: None,
            }
        );
    }

    #[test]
    fn bedrock_bounds_are_read_and_zero_is_refused() {
        let cfg = Config::from_source(
            &env(&[
                ("LLM_PROVIDER", "bedrock"),
                ("BEDROCK_ATTEMPT_TIMEOUT_MS", "8000"),
                ("BEDROCK_MAX_ATTEMPTS", "2"),
            ]),
            "x",
        )
        .expect("valid");
        assert_eq!(
            cfg.llm,
            LlmConfig::Bedrock {
                model_id: DEFAULT_BEDROCK_MODEL_ID.to_owned(),
                attempt_timeout: Some(Duration::from_secs(8)),
                max_attempts: Some(2),
            }
        );
        for (key, raw) in [
            ("BEDROCK_MAX_ATTEMPTS", "0"),
            ("BEDROCK_MAX_ATTEMPTS", "two"),
            ("BEDROCK_ATTEMPT_TIMEOUT_MS", "0"),
            ("BEDROCK_ATTEMPT_TIMEOUT_MS", "-5"),
        ] {
            let err = Config::from_source(&env(&[("LLM_PROVIDER", "bedrock"), (key, raw)]), "x")
                .expect_err("refused");
            assert_eq!(err.key, key, "{key}={raw}");
            assert!(err.reason.contains(raw), "{}", err.reason);
        }
    }
}
