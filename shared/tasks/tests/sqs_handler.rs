//! The queue-triggered handler against SQS on moto: a poison message in a batch of ten goes
//! to the DLQ alone while the other nine succeed; a duplicate delivery has one effect; a
//! failed attempt is reported for redelivery with its backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_tasks::sqs::{DEAD_REASON_ATTRIBUTE, handle_batch};
use celeriac_tasks::{
    Registry, Runner, SendOptions, SqsTransport, Task, TaskClient, TaskContext, TaskError,
    TaskSpec, TaskState, TaskStore,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Args {
    fail: bool,
}

struct Effect(Arc<AtomicU32>);

#[async_trait]
impl Task for Effect {
    type Args = Args;
    type Output = u32;
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("effect")
    }
    async fn run(&self, args: Args, _ctx: &TaskContext) -> Result<u32, TaskError> {
        if args.fail {
            return Err(TaskError::Retryable("the dependency is down".into()));
        }
        Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

struct Setup {
    client: aws_sdk_sqs::Client,
    queue: String,
    url: String,
    dlq_url: String,
    sqs: SqsTransport,
    tasks: TaskClient,
    runner: Runner,
    effects: Arc<AtomicU32>,
}

async fn setup() -> Option<Setup> {
    let sdk = celeriac_testkit::moto_sdk().await?;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let queue = format!("h{nanos:x}");
    let mut urls = Vec::new();
    for name in [queue.clone(), format!("{queue}-dlq")] {
        let out = client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue");
        urls.push(out.queue_url.expect("url"));
    }
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let effects = Arc::new(AtomicU32::new(0));
    let runner = Runner::new(
        Arc::new(Registry::new().register(Effect(effects.clone()))),
        kv.clone(),
    );
    let tasks = TaskClient::new(
        Arc::new(SqsTransport::new(&sdk, "")),
        TaskStore::new(kv),
        "test",
    );
    Some(Setup {
        client,
        url: urls[0].clone(),
        dlq_url: urls[1].clone(),
        queue,
        sqs: SqsTransport::new(&sdk, ""),
        tasks,
        runner,
        effects,
    })
}

/// Receives `n` messages as the Lambda event source mapping delivers them.
async fn batch(s: &Setup, n: usize) -> SqsEvent {
    let event = celeriac_testkit::sqs_event(&s.client, &s.url, n).await;
    serde_json::from_value(event).expect("an SQS event")
}

impl Setup {
    /// Enqueues the `effect` task on this test's queue; returns its id.
    async fn send_effect(&self, fail: bool) -> String {
        let options = SendOptions {
            queue: Some(self.queue.clone()),
            ..SendOptions::default()
        };
        self.tasks
            .send(
                &Effect(Arc::default()).spec(),
                serde_json::json!({ "fail": fail }),
                options,
            )
            .await
            .expect("send")
    }
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_alone_and_nine_succeed() {
    let Some(s) = setup().await else { return };
    let mut ids = Vec::new();
    for _ in 0..9 {
        let id = s.send_effect(false).await;
        ids.push(id);
    }
    s.client
        .send_message()
        .queue_url(&s.url)
        .message_body("{definitely not a task")
        .send()
        .await
        .expect("send poison");

    let event = batch(&s, 10).await;
    let response = handle_batch(&s.runner, &s.sqs, event, None).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "the poison message is dead-lettered, not retried: {:?}",
        response
            .batch_item_failures
            .iter()
            .map(|f| &f.item_identifier)
            .collect::<Vec<_>>()
    );
    assert_eq!(s.effects.load(Ordering::SeqCst), 9);
    for id in &ids {
        let record = s.tasks.store().get(id).await.expect("get").expect("record");
        assert_eq!(record.status, TaskState::Success);
    }
    let dead = s
        .client
        .receive_message()
        .queue_url(&s.dlq_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive dlq")
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body.as_deref(), Some("{definitely not a task"));
    let reason = dead[0]
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(DEAD_REASON_ATTRIBUTE))
        .and_then(|v| v.string_value.clone())
        .expect("reason attribute");
    assert!(reason.starts_with("not a task envelope"), "{reason}");
}

#[tokio::test]
async fn a_duplicate_delivery_has_one_effect() {
    let Some(s) = setup().await else { return };
    s.send_effect(false).await;
    let event = batch(&s, 1).await;
    let again = event.clone();
    assert!(
        handle_batch(&s.runner, &s.sqs, event, None)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        handle_batch(&s.runner, &s.sqs, again, None)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(s.effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_attempt_is_reported_and_comes_back_after_its_backoff() {
    let Some(s) = setup().await else { return };
    let id = s.send_effect(true).await;
    let event = batch(&s, 1).await;
    let message_id = event.records[0].message_id.clone().expect("id");
    let response = handle_batch(&s.runner, &s.sqs, event, None).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [message_id]);
    let record = s
        .tasks
        .store()
        .get(&id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Retry);
    assert_eq!(record.error.as_deref(), Some("the dependency is down"));
    // Backoff for the first retry is at most 1 s (rounded up to whole seconds by SQS).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = batch(&s, 1).await;
    assert_eq!(
        again.records[0]
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("2")
    );
}
