//! A `celeriac worker` with one extra task, `sleepy`, for the fault tests: it sleeps, then
//! counts its effect in Redis, so a test can kill the process mid-task (a real SIGKILL)
//! and check the task is completed once by another worker.
//!
//! Environment: `REDIS_URL`; `FAULT_QUEUE` (default `faults`), so concurrent tests keep
//! apart; `VISIBILITY_MS` (default 1000).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use celeriac_kv::{KeyValue, RedisKv};
use celeriac_tasks::{
    RedisStreams, Registry, Runner, Task, TaskContext, TaskError, TaskSpec, Worker,
};
use serde::{Deserialize, Serialize};

/// Arguments of `sleepy`.
#[derive(Debug, Serialize, Deserialize)]
struct Sleepy {
    ms: u64,
    counter: String,
}

struct SleepyTask(Arc<RedisKv>);

#[async_trait]
impl Task for SleepyTask {
    type Args = Sleepy;
    type Output = i64;
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("sleepy").queue("faults")
    }
    async fn run(&self, args: Sleepy, _ctx: &TaskContext) -> Result<i64, TaskError> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(self
            .0
            .increment(&args.counter, 1, Some(Duration::from_secs(600)))
            .await?)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    celeriac_platform::telemetry::init();
    let config = celeriac_platform::Config::from_env("fault_worker")?;
    let redis = config
        .redis
        .ok_or_else(|| anyhow::anyhow!("REDIS_URL is required"))?;
    let visibility = Duration::from_millis(
        std::env::var("VISIBILITY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
    );
    let kv = Arc::new(RedisKv::open(&redis).await?);
    let streams = Arc::new(RedisStreams::new(
        kv.clone(),
        redis.clone(),
        format!("fault-{}", std::process::id()),
        visibility,
    ));
    let registry = Arc::new(Registry::new().register(SleepyTask(kv.clone())));
    let worker = Worker::new(
        streams,
        Runner::new(registry, kv).with_lease(visibility),
        vec![std::env::var("FAULT_QUEUE").unwrap_or_else(|_| "faults".into())],
        8,
    );
    worker
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
