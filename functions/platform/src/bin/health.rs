//! Lambda function `health`: `GET /api/health/`.

use celeriac_platform::{Config, http, telemetry};
use celeriac_platform_functions::{Adapters, Defaults, health};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let config = Config::from_env("health")?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let app = http::app(health::router(adapters.health_check(&config)), &config.http);
    http::run_lambda(app).await
}
