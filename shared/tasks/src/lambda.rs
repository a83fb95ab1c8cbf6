//! The Lambda functions every task shares: config, store and clients built once per
//! execution environment, then each SQS batch through [`crate::sqs::handle_batch`], or
//! each EventBridge Scheduler tick through [`run_tick`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use celeriac_kv::{MemoryKv, RedisKv, SharedKv};
use celeriac_platform::{Config, telemetry};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::envelope::Envelope;
use crate::runner::{Outcome, Runner};
use crate::schedule::{Tick, TickLock};
use crate::sqs::{SqsTransport, handle_batch};
use crate::task::Registry;

/// Serves `registry`'s tasks from SQS until the runtime stops the function.
pub async fn run_sqs_function(
    service: &str,
    registry: Registry,
) -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = Config::from_env(service)?;
    let kv = open_kv(&config).await?;
    let sdk = celeriac_platform::aws::load().await?;
    let sqs = Arc::new(SqsTransport::new(&sdk, config.task_queue_prefix.clone()));
    let runner = Arc::new(Runner::new(Arc::new(registry), kv));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let runner = runner.clone();
        let sqs = sqs.clone();
        async move {
            let deadline = instant_of(event.context.deadline);
            Ok::<SqsBatchResponse, lambda_runtime::Error>(
                handle_batch(&runner, &sqs, event.payload, deadline).await,
            )
        }
    }))
    .await
}

/// Serves `registry`'s scheduled tasks from EventBridge Scheduler ticks.
pub async fn run_scheduled_function(
    service: &str,
    registry: Registry,
) -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = Config::from_env(service)?;
    let kv = open_kv(&config).await?;
    let registry = Arc::new(registry);
    let runner = Arc::new(Runner::new(registry.clone(), kv.clone()));
    let lock = Arc::new(TickLock::new(kv));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Tick>| {
        let (runner, lock, registry) = (runner.clone(), lock.clone(), registry.clone());
        async move {
            let deadline = instant_of(event.context.deadline);
            run_tick(&runner, &registry, &lock, &event.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// Runs one tick once: duplicates are acknowledged without running; a failure a retry can
/// fix gives the tick back and fails the invocation, so Scheduler's retry policy runs it.
pub async fn run_tick(
    runner: &Runner,
    registry: &Registry,
    lock: &TickLock,
    tick: &Tick,
    deadline: Option<Instant>,
) -> Result<(), String> {
    let span = tracing::info_span!("tick", schedule = %tick.schedule, scheduled_time = %tick.scheduled_time);
    let _entered = span.enter();
    let task = registry.get(&tick.task).ok_or_else(|| {
        format!(
            "schedule {} names unknown task {}",
            tick.schedule, tick.task
        )
    })?;
    let lease = task.spec().time_limit + Duration::from_secs(60);
    if !lock.acquire(tick, lease).await.map_err(|e| e.to_string())? {
        tracing::info!("tick already run; duplicate delivery ignored");
        return Ok(());
    }
    let envelope = Envelope {
        id: tick.task_id(),
        task: tick.task.clone(),
        args: tick.args.clone(),
        retries: 0,
        eta: None,
        expires: None,
        priority: None,
        queue: task.spec().queue.to_owned(),
        root_id: None,
        parent_id: None,
        idempotency_key: None,
        timelimit: Some(task.spec().time_limit.as_secs()),
        enqueued_at: tick.scheduled_time,
        origin: Some(format!("schedule {}", tick.schedule)),
        trace_id: None,
        owner: None,
    };
    match runner
        .execute(envelope.to_json().as_bytes(), 1, deadline)
        .await
    {
        Outcome::Ack | Outcome::Defer { .. } => Ok(()),
        Outcome::Retry(_) => {
            let _ = lock.release(tick).await;
            Err(format!(
                "schedule {} tick failed; Scheduler will retry it",
                tick.schedule
            ))
        }
        Outcome::Dead(reason) => {
            tracing::error!(reason = %reason, "scheduled task failed for good");
            Ok(())
        }
    }
}

async fn open_kv(config: &Config) -> Result<SharedKv, lambda_runtime::Error> {
    Ok(match &config.redis {
        Some(redis) => Arc::new(RedisKv::open(redis).await?),
        None => {
            tracing::warn!(
                "REDIS_URL is not set: task states live in this process only and status endpoints will not see them"
            );
            Arc::new(MemoryKv::new())
        }
    })
}

/// The invocation deadline (milliseconds since the epoch) as an `Instant`.
fn instant_of(deadline_ms: u64) -> Option<Instant> {
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis(),
    )
    .ok()?;
    // Leave time to settle the batch (visibility changes, DLQ sends) before the runtime cuts us off.
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?)
        .saturating_sub(Duration::from_millis(500));
    Some(Instant::now() + left)
}
