//! PostgreSQL: the pool a function opens once per execution environment, the migrations
//! every app's tables come from, and the database health probe.
//!
//! Credentials come from `DATABASE_URL`, or on AWS from an RDS-style Secrets Manager secret
//! (`DATABASE_SECRET_ARN`) read once at init, so the password never sits in the function's
//! environment. Migrations are embedded in the binaries and run by `celeriac migrate` and
//! the dev runner, not on every cold start.

use std::time::Duration;

use async_trait::async_trait;
use celeriac_platform::config::{DatabaseConfig, DatabaseSource};
use celeriac_platform::health::{ErrorKind, Probe, ProbeError};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use sqlx::PgPool;

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Reaching the server, or the server, failed; a later attempt can succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The secret or URL is unusable; the deployment must change.
    #[error("database configuration: {0}")]
    Config(String),
    /// A migration failed: a bug in the migration or a hand-edited schema.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl DbError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The fields of an RDS-managed secret that a connection needs.
#[derive(Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    host: String,
    port: Option<u16>,
    dbname: Option<String>,
}

async fn connect_options(config: &DatabaseConfig) -> Result<PgConnectOptions, DbError> {
    match &config.source {
        DatabaseSource::Url(url) => url
            .expose_secret()
            .parse::<PgConnectOptions>()
            // sqlx's message may quote the URL: say only that it is malformed.
            .map_err(|_| DbError::Config("DATABASE_URL is not a valid PostgreSQL URL".into())),
        DatabaseSource::SecretArn(arn) => {
            let sdk = celeriac_platform::aws::load()
                .await
                .map_err(|e| DbError::Config(e.to_string()))?;
            let client = aws_sdk_secretsmanager::Client::new(&sdk);
            let value = client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    DbError::Unavailable(format!(
                        "reading the database secret: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                    ))
                })?;
            let raw = value
                .secret_string()
                .ok_or_else(|| DbError::Config("the database secret has no SecretString".into()))?;
            let secret: RdsSecret = serde_json::from_str(raw).map_err(|e| {
                DbError::Config(format!(
                    "the database secret is not RDS-style JSON: {}",
                    e.classify_name()
                ))
            })?;
            let mut options = PgConnectOptions::new()
                .host(&secret.host)
                .port(secret.port.unwrap_or(5432))
                .username(&secret.username)
                .password(&secret.password);
            if let Some(db) = &secret.dbname {
                options = options.database(db);
            }
            Ok(options)
        }
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        // Never echo the secret's text: only the kind of parse failure.
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "missing or mistyped fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// Opens the pool and one connection now, so the first request does not pay for it.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let options = connect_options(config).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .acquire_timeout(config.connect_timeout)
        // Lambda freezes idle environments; a connection idle this long is likely dead.
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options);
    match tokio::time::timeout(config.connect_timeout, pool.acquire()).await {
        Ok(Ok(_conn)) => tracing::info!("database connected"),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "database not reachable at init; will retry on use")
        }
        Err(_) => tracing::warn!("database did not answer at init; will retry on use"),
    }
    Ok(pool)
}

/// Applies every migration not yet applied. Safe to run concurrently: sqlx takes an
/// advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .map_err(|e| DbError::Migration(e.to_string()))
}

/// Health probe: one `SELECT 1`.
#[derive(Debug, Clone)]
pub struct PgProbe(pub PgPool);

#[async_trait]
impl Probe for PgProbe {
    fn adapter(&self) -> &'static str {
        "postgres"
    }
    async fn check(&self) -> Result<(), ProbeError> {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.0)
            .await
            .map(|_| ())
            .map_err(|e| ProbeError::new(probe_kind(&e), e.to_string()))
    }
}

/// What kind of failure a health probe's query met, from the error's type where it says.
fn probe_kind(err: &sqlx::Error) -> ErrorKind {
    match err {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable => ErrorKind::Refused,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Unavailable,
        },
        sqlx::Error::PoolTimedOut => ErrorKind::Timeout,
        // 28000 invalid_authorization_specification, 28P01 invalid_password.
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
            ErrorKind::Auth
        }
        other => ErrorKind::from_message(&other.to_string()),
    }
}

/// Whether a failed query can succeed if tried again: the server unreachable or shutting
/// down, the pool exhausted, a connection dropped, or a transaction lost to a
/// serialization failure or deadlock. Everything else (constraint violations, bad SQL,
/// type mismatches) fails the same way every time.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 40001 serialization_failure, 40P01 deadlock_detected, class 08 connection
            // exceptions, class 57P admin/crash shutdown, 53300 too_many_connections.
            code == "40001"
                || code == "40P01"
                || code == "53300"
                || code.starts_with("08")
                || code.starts_with("57P")
        }),
        _ => false,
    }
}

/// Whether `err` is a unique-constraint violation (23505): "already exists".
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
