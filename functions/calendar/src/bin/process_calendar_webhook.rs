//! Lambda function `process_calendar_webhook`: syncs a user's calendar after each Google
//! notification, from its queue (`calendar`).

use celeriac_calendar::CalendarBackend;
use celeriac_calendar::config::CalendarConfig;
use celeriac_platform_functions::{Adapters, Defaults};
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_sqs_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = celeriac_platform::Config::from_env("process_calendar_webhook")?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let backend = CalendarBackend::open(&adapters, CalendarConfig::from_env(false, None)?)?;
    let registry = Registry::new().register(backend.process_webhook_task());
    run_sqs_function("process_calendar_webhook", registry).await
}
