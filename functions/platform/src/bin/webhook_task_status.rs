//! Lambda function `webhook_task_status`: `GET /webhook/task-status/{task_id}`.

use celeriac_platform::{Config, http, telemetry};
use celeriac_platform_functions::{Adapters, Defaults, task_status};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init();
    let config = Config::from_env("webhook_task_status")?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let routes = task_status::router(task_status::WEBHOOK_PATH, adapters.kv.clone());
    http::run_lambda(http::app(routes, &config.http)).await
}
