//! `celeriac dev`: the whole system on one machine.
//!
//! Every HTTP function's router merged on one port, wrapped by the same HTTP kit the
//! Lambda binaries use, plus a worker that runs every app's tasks from the in-process
//! queue, and the dev-only routes `celeriac call` talks to.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use celeriac_kv::RedisKv;
use celeriac_platform::Config;
use celeriac_platform::config::QueueConfig;
use celeriac_platform::health::HealthCheck;
use celeriac_platform_functions::{Adapters, Defaults, health, task_status};
use celeriac_tasks::{
    InProcess, RedisStreams, Registry, Runner, TaskClient, TaskStore, Transport, Worker,
};

use celeriac_shop::accounts::http::{self as accounts, AccountsApi, AccountsConfig};
use celeriac_shop::orders::http::OrdersApi;

use crate::dev_api;

/// Every HTTP function's routes, merged, with the dev-only task routes; health reports
/// `health` (the deployment's components and this process's worker).
pub fn routes(
    health: HealthCheck,
    adapters: &Adapters,
    registry: Arc<Registry>,
    client: TaskClient,
    accounts: AccountsApi,
    orders: OrdersApi,
) -> Router {
    Router::new()
        .merge(health::router(health))
        .merge(accounts::all(accounts))
        .merge(celeriac_shop::orders::http::all(orders))
        .merge(task_status::router(
            task_status::TASK_PATH,
            adapters.kv.clone(),
        ))
        .merge(task_status::router(
            task_status::WEBHOOK_PATH,
            adapters.kv.clone(),
        ))
        .merge(dev_api::router(registry, client))
}

/// The calendar's routes, with the fixture calendar's control routes when the fixture is
/// the provider.
fn calendar_routes(calendar: &celeriac_calendar::CalendarBackend, client: TaskClient) -> Router {
    let api = celeriac_calendar::http::CalendarApi::new(calendar.clone(), Some(client));
    let sessions = api.sessions.clone();
    let routes = celeriac_calendar::http::all(api);
    match calendar.fixture.clone() {
        Some(fixture) => routes.merge(celeriac_calendar::http::fixture_control(fixture, sessions)),
        None => routes,
    }
}

/// Builds the system from the environment and serves it until Ctrl-C or SIGTERM.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let config = Config::from_env("celeriac-dev")?;
    let adapters = Adapters::open(&config, Defaults::Embedded).await?;
    if let Some(pool) = adapters.pg_pool() {
        celeriac_db::migrate(pool)
            .await
            .context("applying migrations")?;
    }
    if matches!(config.queue, QueueConfig::Sqs { .. }) {
        tracing::warn!(
            "celeriac dev runs tasks on its own queue; the SQS queue is only probed by health (SQS tasks run on Lambda)"
        );
    }
    let kv = adapters
        .kv
        .clone()
        .context("celeriac dev always has a key-value store")?;
    // One order store for the routes and the tasks, as on AWS one database serves both.
    let orders = celeriac_shop::orders::http::open_store(&adapters)?;
    celeriac_shop::orders::catalogue::seed_if_empty(&orders).await?;
    let orders_api = OrdersApi::open(&adapters, orders.clone())?;
    // One calendar backend (store, provider, cache) for the routes and the tasks.
    let calendar = celeriac_calendar::CalendarBackend::open(
        &adapters,
        celeriac_calendar::config::CalendarConfig::from_env(true, Some(&format!("http://{addr}")))?,
    )?;
    // TASK_TRANSPORT=redis: tasks travel on Redis Streams, so `celeriac worker`s elsewhere
    // can share the work; otherwise the in-process queue.
    let transport: Arc<dyn Transport> = match (&config.queue, &config.redis) {
        (QueueConfig::RedisStreams, Some(redis)) => Arc::new(RedisStreams::new(
            Arc::new(RedisKv::open(redis).await?),
            redis.clone(),
            format!("dev-{}", std::process::id()),
            std::time::Duration::from_secs(30),
        )),
        _ => Arc::new(InProcess::default()),
    };
    let client = TaskClient::new(
        transport.clone(),
        TaskStore::new(kv.clone()),
        "celeriac dev",
    );
    // One wellness backend (cache, model, catalogue) and one recall backend
    // (conversations, model) for the routes and the tasks.
    let wellness = celeriac_wellness::WellnessBackend::open(&adapters)?;
    let recall = celeriac_recall::RecallBackend::open(&adapters)?;
    let registry = Arc::new(
        crate::registry_with(
            orders,
            Some(orders_api.cache.clone()),
            &calendar,
            &wellness,
            &recall,
            Some(client.clone()),
        )
        .await?,
    );
    let kv_for_beat = kv.clone();
    let template_path = std::env::var("CELERIAC_TEMPLATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from("template.yaml"));
    let queues = registry.queues();
    let concurrency = crate::default_concurrency(queues.len());
    let worker = Worker::new(
        transport,
        Runner::new(registry.clone(), kv).with_lease(std::time::Duration::from_secs(30)),
        queues,
        concurrency,
    );
    // The pollers' own state, read from memory on every request: a Redis that answers PING
    // while every receive fails (its consumer groups gone) still shows here.
    let health = adapters.health_check(&config).component_every(
        "worker",
        Arc::new(worker.status()),
        std::time::Duration::ZERO,
    );

    // Mailed links point here unless PUBLIC_BASE_URL says otherwise.
    let accounts = AccountsApi::open(
        &adapters,
        client.clone(),
        AccountsConfig::from_env(Some(&format!("http://{addr}")))?,
    )?;
    let calendar_routes = calendar_routes(&calendar, client.clone());
    let recall_routes = celeriac_recall::http::all(celeriac_recall::http::RecallApi::open(
        &adapters,
        recall,
        Some(client.clone()),
    )?);
    let wellness_routes = celeriac_wellness::http::all(celeriac_wellness::http::WellnessApi::new(
        wellness,
        Some(client.clone()),
        adapters.limiter.clone(),
    ));
    let app = celeriac_platform::http::app(
        routes(
            health,
            &adapters,
            registry.clone(),
            client.clone(),
            accounts,
            orders_api,
        )
        .merge(calendar_routes)
        .merge(wellness_routes)
        .merge(recall_routes),
        &config.http,
    );
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another celeriac dev running? try --port)")
    })?;
    tracing::info!(
        url = %format!("http://{addr}"),
        kv = adapters.kv.as_ref().map(|kv| kv.adapter()),
        "celeriac dev is serving"
    );

    let mut beat = tokio::task::JoinSet::new();
    match std::fs::read_to_string(&template_path) {
        Ok(text) => {
            let schedules = crate::schedules::from_template(&text, &registry)
                .with_context(|| format!("schedules in {}", template_path.display()))?;
            let lock = celeriac_tasks::schedule::TickLock::new(kv_for_beat.clone());
            for schedule in schedules {
                tracing::info!(schedule = %schedule.tick.schedule, task = %schedule.tick.task, "schedule armed");
                beat.spawn(crate::schedules::fire(
                    schedule,
                    registry.clone(),
                    client.clone(),
                    lock.clone(),
                ));
            }
        }
        Err(err) => {
            tracing::warn!(path = %template_path.display(), error = %err, "no template.yaml here: no schedules fire")
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    // Connect info gives handlers the peer address (`celeriac_limits::client_ip`), the
    // local counterpart of API Gateway's source IP.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving");
    beat.abort_all();
    let _ = stop_tx.send(true);
    let _ = worker.await;
    served?;
    tracing::info!("celeriac dev stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
