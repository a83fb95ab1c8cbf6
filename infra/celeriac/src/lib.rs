//! The `celeriac` command line: `celeriac dev` runs the whole system on one machine;
//! `celeriac call` / `celeriac result` enqueue a task and read its state, like Celery's
//! `apply_async` and `AsyncResult`; `celeriac migrate` applies the database migrations.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

pub mod dev;
pub mod dev_api;
pub mod schedules;

/// celeriac: the Redis-and-Celery tier as serverless Rust.
#[derive(Debug, Parser)]
#[command(name = "celeriac", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every HTTP function on one port and run every task, with embedded defaults
    /// (in-memory store, in-process queue, in-memory database, local LLM engine).
    /// REDIS_URL, DATABASE_URL, TASK_QUEUE_URL and LLM_PROVIDER switch to real adapters.
    Dev {
        /// Port to listen on.
        #[arg(long, default_value_t = 3000, env = "CELERIAC_DEV_PORT")]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST), env = "CELERIAC_DEV_HOST")]
        host: IpAddr,
    },
    /// Run tasks from Redis Streams (REDIS_URL) until SIGTERM or Ctrl-C, then finish the
    /// running ones and stop.
    Worker {
        /// Queues to consume, comma-separated (default: every task's queue).
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
        /// Tasks run at once (default: 8, or one per queue polled when there are more).
        /// Fewer than the queues polled makes the queues take turns (each waits up to
        /// 50 ms per turn).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Seconds after which another worker takes over a delivery this one left
        /// unacknowledged (it died).
        #[arg(long, default_value_t = 30)]
        visibility: u64,
        /// Serve `GET /api/health/` (Redis, and this worker's pollers: error while a
        /// queue's receives keep failing) on this address, e.g. 127.0.0.1:8081, for a
        /// supervisor's checks.
        #[arg(long)]
        health_addr: Option<SocketAddr>,
    },
    /// Enqueue a task by name and print its id: through the `celeriac dev` at CELERIAC_URL,
    /// or straight to SQS (TASK_TRANSPORT=sqs, TASK_QUEUE_URL, TASK_QUEUE_PREFIX) or to
    /// Redis Streams (REDIS_URL) when it is not set.
    Call {
        /// Task name, e.g. test_celery.
        task: String,
        /// Arguments as a JSON object, e.g. '{"word": "ping"}'.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Seconds before it may run.
        #[arg(long)]
        countdown: Option<f64>,
        /// Another queue than the task's own.
        #[arg(long)]
        queue: Option<String>,
        /// Priority 0 (lowest) to 9 (highest).
        #[arg(long)]
        priority: Option<u8>,
    },
    /// Print a task's state and result (from CELERIAC_URL, or directly from REDIS_URL).
    Result {
        /// Task id, as `celeriac call` printed it.
        task_id: String,
        /// The access token of the user a task was enqueued for (through CELERIAC_URL,
        /// such a task's state is shown only to that user's session).
        #[arg(long, env = "CELERIAC_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Wait up to this many seconds for a final state (SUCCESS, FAILURE, REVOKED).
        #[arg(long, default_value_t = 0.0)]
        wait: f64,
    },
    /// Apply the PostgreSQL migrations to DATABASE_URL (or DATABASE_SECRET_ARN).
    Migrate,
    /// Start a session for a user in the Redis at REDIS_URL and print its access token,
    /// for calling session-bound functions one at a time (`cargo lambda invoke` with an
    /// `authorization: Bearer ...` header) where no login function runs. It grants nothing
    /// that write access to that Redis does not already give.
    Session {
        /// The user id the session is for (an account's id, as `GET /api/v1/user/me`
        /// shows it).
        #[arg(long)]
        user: String,
    },
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev { port, host } => dev::serve(SocketAddr::new(host, port)).await,
        Command::Call {
            task,
            args,
            countdown,
            queue,
            priority,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args)
                .context("--args must be JSON, e.g. '{\"word\": \"ping\"}'")?;
            let request = dev_api::CallRequest {
                task,
                args,
                countdown,
                eta: None,
                expires: None,
                queue,
                priority,
            };
            let id = match dev_url() {
                Ok(base) => call(&base, &request).await?,
                Err(_) => call_direct(request).await?,
            };
            writeln!(std::io::stdout(), "{id}")?;
            Ok(())
        }
        Command::Session { user } => {
            let config = celeriac_platform::Config::from_env("celeriac")?;
            let Some(redis) = config.redis else {
                bail!("set REDIS_URL: sessions live in Redis");
            };
            let kv = celeriac_kv::RedisKv::open(&redis).await?;
            let sessions = celeriac_sessions::Sessions::new(
                std::sync::Arc::new(kv),
                celeriac_sessions::SessionConfig::default(),
            );
            let created = sessions.create(&user, None).await?;
            writeln!(std::io::stdout(), "{}", created.token.as_str())?;
            Ok(())
        }
        Command::Worker {
            queues,
            concurrency,
            visibility,
            health_addr,
        } => {
            worker(
                queues,
                concurrency,
                Duration::from_secs(visibility),
                health_addr,
            )
            .await
        }
        Command::Result {
            task_id,
            wait,
            token,
        } => {
            if !(0.0..=86_400.0).contains(&wait) {
                bail!("--wait must be between 0 and 86400 seconds");
            }
            let give_up = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
            loop {
                let status = result(&task_id, token.as_deref()).await?;
                let state = status["state"].as_str().unwrap_or("UNKNOWN").to_owned();
                let done = matches!(state.as_str(), "SUCCESS" | "FAILURE" | "REVOKED");
                if done || tokio::time::Instant::now() >= give_up {
                    let mut out = std::io::stdout();
                    writeln!(out, "{state}")?;
                    if let Some(error) = status["error"].as_str().filter(|_| state != "SUCCESS") {
                        writeln!(out, "error: {error}")?;
                    }
                    if !status["result"].is_null() {
                        writeln!(out, "result: {}", status["result"])?;
                    }
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Command::Migrate => {
            let config = celeriac_platform::Config::from_env("celeriac")?;
            let db = config.database.ok_or_else(|| {
                anyhow::anyhow!("set DATABASE_URL or DATABASE_SECRET_ARN to migrate")
            })?;
            let pool = celeriac_db::connect(&db).await?;
            celeriac_db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}

/// Every app's tasks, with `send_email` sending through the mailer the environment names
/// (the file outbox unless `MAIL_PROVIDER` says otherwise), the shop's order sweep over
/// `orders`, the calendar's tasks over `calendar`, the wellness tasks and schedules over
/// `wellness`, and recall's over `recall` (its retry schedule only with a `client` to
/// enqueue with).
pub async fn registry_with(
    orders: celeriac_shop::orders::SharedOrders,
    catalogue: Option<celeriac_cache::Cache>,
    calendar: &celeriac_calendar::CalendarBackend,
    wellness: &celeriac_wellness::WellnessBackend,
    recall: &celeriac_recall::RecallBackend,
    client: Option<celeriac_tasks::TaskClient>,
) -> anyhow::Result<celeriac_tasks::Registry> {
    let mail = celeriac_mail::SendEmail::from_env()
        .await
        .context("mail configuration")?;
    let mut expiry = celeriac_shop::orders::expiry::CheckExpiredOrders::new(
        orders,
        celeriac_shop::orders::expiry::CheckExpiredOrders::max_age_from_env()?,
    );
    if let Some(cache) = catalogue {
        expiry = expiry.with_cache(cache);
    }
    let registry = celeriac_shop::registry(celeriac_tasks::Registry::new(), mail, expiry);
    // The calendar's and wellness tasks over the backends their routes share.
    let registry = wellness.register(calendar.register(registry));
    Ok(celeriac_recall::tasks::register(recall, client, registry))
}

/// [`registry_with`] the stores the environment names: PostgreSQL when `DATABASE_URL`
/// (or `DATABASE_SECRET_ARN`) is set, else in memory; tasks that enqueue use `client`.
pub async fn registry(
    client: Option<celeriac_tasks::TaskClient>,
) -> anyhow::Result<celeriac_tasks::Registry> {
    let config = celeriac_platform::Config::from_env("celeriac")?;
    let orders: celeriac_shop::orders::SharedOrders = match &config.database {
        Some(database) => std::sync::Arc::new(celeriac_shop::orders::postgres::PgOrders::new(
            celeriac_db::connect(database).await?,
        )),
        None => std::sync::Arc::new(celeriac_shop::orders::MemoryOrders::new()),
    };
    let adapters = celeriac_platform_functions::Adapters::open(
        &config,
        celeriac_platform_functions::Defaults::Embedded,
    )
    .await?;
    let calendar = celeriac_calendar::CalendarBackend::open(
        &adapters,
        celeriac_calendar::config::CalendarConfig::from_env(true, None)?,
    )?;
    let wellness = celeriac_wellness::WellnessBackend::open(&adapters)?;
    let recall = celeriac_recall::RecallBackend::open(&adapters)?;
    registry_with(orders, None, &calendar, &wellness, &recall, client).await
}

/// Redis Streams over the configured Redis, and the store beside it.
async fn redis_streams(
    visibility: Duration,
) -> anyhow::Result<(
    std::sync::Arc<celeriac_tasks::RedisStreams>,
    celeriac_kv::SharedKv,
)> {
    let config = celeriac_platform::Config::from_env("celeriac")?;
    let Some(redis) = config.redis else {
        bail!("set REDIS_URL (or REDIS_CLUSTER_NODES): tasks travel on Redis Streams");
    };
    let kv = std::sync::Arc::new(celeriac_kv::RedisKv::open(&redis).await?);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    let consumer = format!("{host}-{}", std::process::id());
    let streams =
        celeriac_tasks::RedisStreams::new(kv.clone(), redis.clone(), consumer, visibility);
    Ok((std::sync::Arc::new(streams), kv))
}

/// Tasks a worker polling `queues` queues runs at once unless told otherwise: 8, or one
/// per queue when there are more, so no queue waits for another's idle receive.
pub fn default_concurrency(queues: usize) -> usize {
    queues.max(8)
}

async fn worker(
    queues: Vec<String>,
    concurrency: Option<usize>,
    visibility: Duration,
    health_addr: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (streams, kv) = redis_streams(visibility).await?;
    let client = celeriac_tasks::TaskClient::new(
        streams.clone(),
        celeriac_tasks::TaskStore::new(kv.clone()),
        "celeriac worker",
    );
    let registry = std::sync::Arc::new(registry(Some(client)).await?);
    let queues = if queues.is_empty() {
        registry.queues()
    } else {
        queues
    };
    let concurrency = concurrency.unwrap_or_else(|| default_concurrency(queues.len()));
    let runner = celeriac_tasks::Runner::new(registry, kv.clone()).with_lease(visibility);
    let worker = celeriac_tasks::Worker::new(streams, runner, queues, concurrency);
    let health = match health_addr {
        Some(addr) => Some(serve_worker_health(addr, kv, worker.status()).await?),
        None => None,
    };
    worker.run(dev::shutdown_signal()).await;
    if let Some(health) = health {
        health.abort();
    }
    Ok(())
}

/// Starts serving the worker's health on `addr`: Redis (one PING per interval) and the
/// pollers' own state (read from memory on every request, so a Redis that answers PING
/// while every receive fails still shows).
async fn serve_worker_health(
    addr: SocketAddr,
    kv: celeriac_kv::SharedKv,
    pollers: celeriac_tasks::PollerStatus,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let config = celeriac_platform::Config::from_env("celeriac-worker")?;
    let check = celeriac_platform::health::HealthCheck::new(config.health_timeout)
        .interval(config.health_interval)
        .component("redis", Some(std::sync::Arc::new(celeriac_kv::KvProbe(kv))))
        .component_every("worker", std::sync::Arc::new(pollers), Duration::ZERO);
    let app = celeriac_platform::http::app(
        celeriac_platform_functions::health::router(check),
        &config.http,
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for health"))?;
    tracing::info!(url = %format!("http://{addr}/api/health/"), "worker health is serving");
    Ok(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "worker health stopped serving");
        }
    }))
}

/// Enqueues straight to the configured broker: SQS when `TASK_TRANSPORT=sqs` (states in
/// Redis when `REDIS_URL` is set), Redis Streams otherwise.
async fn call_direct(request: dev_api::CallRequest) -> anyhow::Result<String> {
    let registry = registry(None).await?;
    let task = registry.get(&request.task).ok_or_else(|| {
        anyhow::anyhow!(
            "no task named {:?}; known tasks: {}",
            request.task,
            registry.names().collect::<Vec<_>>().join(", ")
        )
    })?;
    let config = celeriac_platform::Config::from_env("celeriac")?;
    let client = if let celeriac_platform::config::QueueConfig::Sqs { .. } = config.queue {
        let sdk = celeriac_platform::aws::load().await?;
        let kv: celeriac_kv::SharedKv = match &config.redis {
            Some(redis) => std::sync::Arc::new(celeriac_kv::RedisKv::open(redis).await?),
            // Without Redis the task still runs; only its PENDING record has nowhere to go.
            None => std::sync::Arc::new(celeriac_kv::MemoryKv::new()),
        };
        let sqs = celeriac_tasks::SqsTransport::new(&sdk, config.task_queue_prefix.clone());
        celeriac_tasks::TaskClient::new(
            std::sync::Arc::new(sqs),
            celeriac_tasks::TaskStore::new(kv),
            "celeriac call",
        )
    } else {
        let (streams, kv) = redis_streams(Duration::from_secs(30)).await.map_err(|e| {
            anyhow::anyhow!(
                "{e:#} (or TASK_TRANSPORT=sqs, or CELERIAC_URL for a running celeriac dev)"
            )
        })?;
        celeriac_tasks::TaskClient::new(
            streams,
            celeriac_tasks::TaskStore::new(kv),
            "celeriac call",
        )
    };
    let options = celeriac_tasks::SendOptions {
        countdown: dev_api::countdown(request.countdown).map_err(anyhow::Error::msg)?,
        queue: request.queue,
        priority: request.priority,
        ..celeriac_tasks::SendOptions::default()
    };
    client
        .send(&task.spec(), request.args, options)
        .await
        .map_err(|e| anyhow::anyhow!("not enqueued: {e}"))
}

fn dev_url() -> anyhow::Result<String> {
    match std::env::var("CELERIAC_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(url.trim_end_matches('/').to_owned()),
        _ => bail!(
            "set CELERIAC_URL to a running `celeriac dev` (e.g. http://127.0.0.1:3000), or \
             REDIS_URL / TASK_TRANSPORT=sqs to reach the broker directly"
        ),
    }
}

async fn call(base: &str, request: &dev_api::CallRequest) -> anyhow::Result<String> {
    let sent = reqwest::Client::new()
        .post(format!("{base}{}", dev_api::CALL_PATH))
        .json(request)
        .send()
        .await;
    let body = dev_answer(base, sent, "the task was not enqueued").await?;
    let answer: dev_api::CallResponse = serde_json::from_value(body)?;
    Ok(answer.task_id)
}

/// The JSON body of a `celeriac dev` answer, or its error message as the error.
async fn dev_answer(
    base: &str,
    sent: reqwest::Result<reqwest::Response>,
    fallback: &str,
) -> anyhow::Result<serde_json::Value> {
    let response = sent.with_context(|| format!("cannot reach celeriac dev at {base}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("celeriac dev answered without JSON")?;
    if !status.is_success() {
        bail!("{}", body["error"]["message"].as_str().unwrap_or(fallback));
    }
    Ok(body)
}

async fn result(task_id: &str, token: Option<&str>) -> anyhow::Result<serde_json::Value> {
    if let Ok(base) = dev_url() {
        let request = reqwest::Client::new().get(format!("{base}/task/{task_id}/status"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let sent = request.send().await;
        return dev_answer(&base, sent, "no such task").await;
    }
    let config = celeriac_platform::Config::from_env("celeriac")?;
    let Some(redis) = config.redis else {
        bail!("set CELERIAC_URL (a running celeriac dev) or REDIS_URL (where task states live)");
    };
    let kv = celeriac_kv::RedisKv::open(&redis).await?;
    let store = celeriac_tasks::TaskStore::new(std::sync::Arc::new(kv));
    let record = store
        .get(task_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no task {task_id} (unknown, or its record expired)"))?;
    let mut value = serde_json::to_value(&record)?;
    value["state"] = value["status"].clone();
    Ok(value)
}
