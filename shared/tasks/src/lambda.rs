//! The queue-triggered Lambda function every task shares: config, store and clients built
//! once per execution environment, then each SQS batch through [`crate::sqs::handle_batch`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use celeriac_kv::{MemoryKv, RedisKv, SharedKv};
use celeriac_platform::{Config, telemetry};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::runner::Runner;
use crate::sqs::{SqsTransport, handle_batch};
use crate::task::Registry;

/// Serves `registry`'s tasks from SQS until the runtime stops the function.
pub async fn run_sqs_function(
    service: &str,
    registry: Registry,
) -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = Config::from_env(service)?;
    let kv: SharedKv = match &config.redis {
        Some(redis) => Arc::new(RedisKv::open(redis).await?),
        None => {
            tracing::warn!(
                "REDIS_URL is not set: task states live in this process only and status endpoints will not see them"
            );
            Arc::new(MemoryKv::new())
        }
    };
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
