//! Lambda function `check_expired_orders`: the shop's order sweep, on an EventBridge
//! Scheduler tick every minute.

use std::sync::Arc;

use celeriac_shop::orders::expiry::CheckExpiredOrders;
use celeriac_shop::orders::postgres::PgOrders;
use celeriac_tasks::Registry;
use celeriac_tasks::lambda::run_scheduled_function;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = celeriac_platform::Config::from_env("check_expired_orders")?;
    let database = config
        .database
        .ok_or("check_expired_orders needs DATABASE_URL or DATABASE_SECRET_ARN")?;
    let orders = Arc::new(PgOrders::new(celeriac_db::connect(&database).await?));
    let mut task = CheckExpiredOrders::new(orders, CheckExpiredOrders::max_age_from_env()?);
    // With Redis, the cached catalogue is invalidated when stock comes back.
    if let Some(redis) = &config.redis {
        let kv = Arc::new(celeriac_kv::RedisKv::open(redis).await?);
        task = task.with_cache(celeriac_cache::Cache::new(
            kv,
            celeriac_cache::CacheConfig::default(),
        ));
    }
    run_scheduled_function("check_expired_orders", Registry::new().register(task)).await
}
