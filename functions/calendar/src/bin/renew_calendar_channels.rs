//! Lambda function `renew_calendar_channels`: once a day (EventBridge Scheduler), replaces
//! the watch channels that expire within a day.

use celeriac_calendar::CalendarBackend;
use celeriac_calendar::config::CalendarConfig;
use celeriac_platform_functions::{Adapters, Defaults};
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = celeriac_platform::Config::from_env("renew_calendar_channels")?;
    let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
    let backend = CalendarBackend::open(&adapters, CalendarConfig::from_env(false, None)?)?;
    let registry = Registry::new().register(backend.renew_channels_task());
    run_scheduled_function("renew_calendar_channels", registry).await
}
