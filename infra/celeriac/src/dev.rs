//! `celeriac dev`: every HTTP function's router merged on one port, on embedded defaults.
//!
//! The routers are the same ones the Lambda binaries serve, wrapped by the same HTTP kit,
//! so what answers here answers on Lambda.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use celeriac_platform::Config;
use celeriac_platform_functions::{Adapters, Defaults, health};

/// Every HTTP function's routes, merged.
pub fn routes(config: &Config, adapters: &Adapters) -> Router {
    Router::new().merge(health::router(adapters.health_check(config)))
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
    let app = celeriac_platform::http::app(routes(&config, &adapters), &config.http);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another celeriac dev running? try --port)")
    })?;
    tracing::info!(
        url = %format!("http://{addr}"),
        kv = adapters.kv.as_ref().map(|kv| kv.adapter()),
        "celeriac dev is serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("celeriac dev stopped");
    Ok(())
}

async fn shutdown_signal() {
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
