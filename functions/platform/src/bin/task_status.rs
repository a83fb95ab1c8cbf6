//! Lambda function `task_status`: `GET /task/{task_id}/status`.

use celeriac_platform::{Config, http, telemetry};
use celeriac_platform_functions::{Adapters, Defaults, task_status};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let config = Config::from_env("task_status")?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let routes = task_status::router(task_status::TASK_PATH, adapters.kv.clone());
    http::run_lambda(http::app(routes, &config.http)).await
}
