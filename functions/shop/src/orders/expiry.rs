//! `check_expired_orders`: every minute (a `ScheduleV2` in the template, beat in
//! `celeriac dev`), cancels orders left unpaid longer than the configured age and returns
//! their stock. Safe when runs overlap or a tick arrives twice: the store cancels each
//! order exactly once (see [`super::postgres`]).

use std::time::Duration;

use async_trait::async_trait;
use celeriac_cache::Cache;
use celeriac_tasks::{Task, TaskContext, TaskError, TaskSpec};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::store::{OrderError, SharedOrders};

/// How long an order may wait for payment, as in the seed.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// Orders cancelled per store call; a sweep repeats until fewer come back.
const BATCH: usize = 500;

/// The task.
#[derive(Debug, Clone)]
pub struct CheckExpiredOrders {
    orders: SharedOrders,
    max_age: Duration,
    catalogue: Option<Cache>,
}

impl CheckExpiredOrders {
    /// Expires orders in `orders` unpaid for longer than `max_age`.
    pub fn new(orders: SharedOrders, max_age: Duration) -> Self {
        Self {
            orders,
            max_age,
            catalogue: None,
        }
    }

    /// Also invalidates the cached catalogue when stock comes back.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.catalogue = Some(cache);
        self
    }

    /// The maximum age from `ORDER_PAYMENT_TIMEOUT_MINUTES` (default 30).
    pub fn max_age_from_env() -> Result<Duration, celeriac_platform::config::ConfigError> {
        match std::env::var("ORDER_PAYMENT_TIMEOUT_MINUTES") {
            Ok(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|m| *m > 0)
                .map(|m| Duration::from_secs(m * 60))
                .ok_or_else(|| {
                    celeriac_platform::config::ConfigError::new(
                        "ORDER_PAYMENT_TIMEOUT_MINUTES",
                        "must be a whole number of minutes above 0",
                    )
                }),
            _ => Ok(DEFAULT_MAX_AGE),
        }
    }
}

/// Arguments: none needed; `older_than_minutes` overrides the configured age for one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryArgs {
    /// Cancel orders unpaid for longer than this many minutes (0: every unpaid order).
    #[serde(default)]
    pub older_than_minutes: Option<u32>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryReport {
    /// Orders this run cancelled.
    pub cancelled: usize,
}

impl From<OrderError> for TaskError {
    fn from(err: OrderError) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

#[async_trait]
impl Task for CheckExpiredOrders {
    type Args = ExpiryArgs;
    type Output = ExpiryReport;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("check_expired_orders").time_limit(Duration::from_secs(60))
    }

    async fn run(&self, args: ExpiryArgs, _ctx: &TaskContext) -> Result<ExpiryReport, TaskError> {
        let max_age = args
            .older_than_minutes
            .map_or(self.max_age, |m| Duration::from_secs(u64::from(m) * 60));
        let cutoff =
            Utc::now() - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        let mut cancelled = 0;
        loop {
            let batch = self.orders.expire_orders(cutoff, BATCH).await?;
            cancelled += batch.len();
            if batch.len() < BATCH {
                break;
            }
        }
        if cancelled > 0
            && let Some(cache) = &self.catalogue
        {
            cache.invalidate(&super::http::catalogue_key()).await;
        }
        tracing::info!(
            cancelled,
            max_age_s = max_age.as_secs(),
            "expired orders checked"
        );
        Ok(ExpiryReport { cancelled })
    }
}
