//! Running one HTTP endpoint as a Lambda function: what every app's `src/bin/<fn>.rs` calls.

use axum::Router;
use celeriac_platform::{Config, http, telemetry};

use crate::{Adapters, Defaults};

/// Builds configuration, telemetry and adapters once per execution environment, asks
/// `build` for the router over them (a missing adapter is an init error naming what to
/// set), and serves it until the runtime stops.
pub async fn run_endpoint<F>(service: &str, build: F) -> Result<(), lambda_http::Error>
where
    F: FnOnce(&Config, &Adapters) -> anyhow::Result<Router>,
{
    telemetry::init();
    let config = Config::from_env(service)?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let router = build(&config, &adapters)?;
    http::run_lambda(http::app(router, &config.http)).await
}
