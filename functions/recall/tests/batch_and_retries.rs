//! Failures of the model as the recall tasks meet them, on real parts: a model that keeps
//! failing (llm-katan answering 500) retries `process_conversation_ai` through its SQS
//! handler with the row untouched, then dead-letters it after the last retry; a batch
//! reports each conversation's outcome, a bad id failing alone, and a throttled model
//! (llm-katan's rate limit) retries the batch until the last attempt, which reports it.

mod support;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_llm::{BedrockLlm, BedrockSettings, LocalEngine, SharedLlm};
use celeriac_recall::RecallBackend;
use celeriac_recall::store::Priority;
use celeriac_recall::tasks::{BatchArgs, BatchItem, BatchProcessConversations};
use celeriac_tasks::sqs::handle_batch;
use celeriac_tasks::{SqsTransport, Task, TaskClient, TaskState, TaskStore};
use support::{attempt, backend, create, runner};

/// Bedrock on a private llm-katan started with `flags`, one attempt per call (the
/// adapter's own retries would only slow the test; the task's retries are under test).
async fn katan_model(flags: &[&str]) -> Option<(celeriac_testkit::LlmKatan, SharedLlm)> {
    let katan = celeriac_testkit::LlmKatan::start(flags)?;
    let model = celeriac_testkit::standin("CELERIAC_TEST_BEDROCK_MODEL")?;
    let settings = BedrockSettings {
        max_attempts: 1,
        ..BedrockSettings::new(model)
    };
    let llm = BedrockLlm::new(&celeriac_testkit::sdk_at(katan.url.clone()).await, settings);
    Some((katan, Arc::new(llm)))
}

/// Two of mei's conversations, each with a deadline; their ids.
async fn two_conversations(backend: &RecallBackend) -> (i64, i64) {
    let a = create(
        backend,
        "mei",
        Priority::Default,
        "Anna: We need to submit the Q3 report by Friday.",
    )
    .await;
    let b = create(
        backend,
        "mei",
        Priority::Default,
        "Ben: I'll send the marketing numbers by Wednesday.",
    )
    .await;
    (a, b)
}

fn outcome_of(items: &[BatchItem], id: i64) -> &BatchItem {
    items
        .iter()
        .find(|i| i.conversation_id == id)
        .unwrap_or_else(|| panic!("conversation {id} is reported: {items:?}"))
}

#[tokio::test]
async fn a_failing_model_retries_with_the_row_untouched_then_dead_letters() {
    let Some(sdk) = celeriac_testkit::moto_sdk().await else {
        return;
    };
    let Some((_katan, llm)) = katan_model(&["--error-rate", "1.0"]).await else {
        return;
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let prefix = format!("f{}-", celeriac_testkit::free_port());
    let urls = celeriac_testkit::sqs_queues(&sqs, &prefix, &["recall-ai", "recall-ai-dlq"]).await;
    let backend = backend(llm);
    let id = create(
        &backend,
        "mei",
        Priority::Default,
        "We need to submit the Q3 report by Friday.",
    )
    .await;
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let store = TaskStore::new(kv.clone());
    let client = TaskClient::new(
        Arc::new(SqsTransport::new(&sdk, prefix.clone())),
        store.clone(),
        "conversation_create",
    );
    let conversation = backend.store.get(id).await.expect("get").expect("found");
    let task_id = backend
        .enqueue(&client, &conversation)
        .await
        .expect("enqueued");
    let runner = runner(&backend, kv);
    let handler = SqsTransport::new(&sdk, prefix);

    // The first attempt and three retries (Celery's default), each delivered by SQS
    // again after its backoff.
    let max_retries = celeriac_recall::tasks::PROCESS_CONVERSATION_AI.max_retries;
    for delivery in 1..=max_retries + 1 {
        let event: SqsEvent =
            serde_json::from_value(celeriac_testkit::sqs_event(&sqs, &urls[0], 1).await)
                .expect("event");
        let response = handle_batch(&runner, &handler, event, None).await;
        let record = store.get(&task_id).await.expect("record").expect("exists");
        let row = backend.store.get(id).await.expect("get").expect("found");
        assert!(
            !row.ai_processed && row.ai_summary.is_none() && row.ai_action_items.is_empty(),
            "a failed call stores nothing: {row:?}"
        );
        assert!(
            record
                .error
                .as_deref()
                .is_some_and(|e| e.contains("unavailable")),
            "{record:?}"
        );
        if delivery <= max_retries {
            assert_eq!(
                response.batch_item_failures.len(),
                1,
                "delivery {delivery} is given back for a retry"
            );
            assert_eq!(record.status, TaskState::Retry);
        } else {
            assert!(
                response.batch_item_failures.is_empty(),
                "the last delivery is settled"
            );
            assert_eq!(record.status, TaskState::Failure);
        }
    }
    let dead = celeriac_testkit::sqs_event(&sqs, &urls[1], 1).await;
    assert!(
        dead["Records"][0]["body"]
            .as_str()
            .is_some_and(|b| b.contains(&task_id)),
        "the message is in the dead letters: {dead}"
    );
}

#[tokio::test]
async fn a_batch_reports_each_conversation_and_a_bad_id_fails_alone() {
    let backend = backend(Arc::new(LocalEngine::new()));
    let (a, b) = two_conversations(&backend).await;
    let task = BatchProcessConversations(backend.clone());
    let args = BatchArgs {
        conversation_ids: vec![a, 999, b],
    };
    let items = task.run(args.clone(), &attempt(0)).await.expect("batch");
    assert_eq!(outcome_of(&items, a).outcome, "processed");
    assert_eq!(outcome_of(&items, b).outcome, "processed");
    let unknown = outcome_of(&items, 999);
    assert_eq!(unknown.outcome, "failed");
    assert!(
        unknown.error.as_deref().is_some_and(|e| e.contains("999")),
        "{unknown:?}"
    );
    for id in [a, b] {
        let row = backend.store.get(id).await.expect("get").expect("found");
        assert!(
            row.ai_processed && !row.ai_action_items.is_empty(),
            "{row:?}"
        );
    }

    // The same batch again (a duplicate delivery) stores nothing new.
    let stored = backend.store.get(a).await.expect("get");
    let again = task.run(args, &attempt(0)).await.expect("batch");
    assert_eq!(outcome_of(&again, a).outcome, "already_processed");
    assert_eq!(outcome_of(&again, b).outcome, "already_processed");
    assert_eq!(backend.store.get(a).await.expect("get"), stored);

    let empty = task
        .run(
            BatchArgs {
                conversation_ids: Vec::new(),
            },
            &attempt(0),
        )
        .await
        .expect_err("an empty batch is refused");
    assert!(!empty.is_retryable(), "{empty}");
}

#[tokio::test]
async fn a_throttled_model_retries_the_batch_and_the_last_attempt_reports_it() {
    // One request goes through; every later one is throttled (llm-katan's count never
    // resets), so of two conversations one is analysed and the other keeps being refused.
    let Some((_katan, llm)) = katan_model(&["--rate-limit-after", "1"]).await else {
        return;
    };
    let backend = backend(llm);
    let (a, b) = two_conversations(&backend).await;
    let task = BatchProcessConversations(backend.clone());
    let args = BatchArgs {
        conversation_ids: vec![a, b, 999],
    };

    let err = task
        .run(args.clone(), &attempt(0))
        .await
        .expect_err("a throttled conversation fails the batch while retries remain");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("throttling"), "{err}");
    let mut stored = Vec::new();
    for id in [a, b] {
        if backend
            .store
            .get(id)
            .await
            .expect("get")
            .expect("found")
            .ai_processed
        {
            stored.push(id);
        }
    }
    assert_eq!(stored.len(), 1, "exactly one call got through");
    let (done, refused) = if stored[0] == a { (a, b) } else { (b, a) };

    let last = task.spec().max_retries;
    let items = task.run(args, &attempt(last)).await.expect("last attempt");
    assert_eq!(outcome_of(&items, done).outcome, "already_processed");
    let throttled = outcome_of(&items, refused);
    assert_eq!(throttled.outcome, "failed");
    assert!(
        throttled
            .error
            .as_deref()
            .is_some_and(|e| e.contains("throttling")),
        "{throttled:?}"
    );
    assert_eq!(outcome_of(&items, 999).outcome, "failed");
    let row = backend
        .store
        .get(refused)
        .await
        .expect("get")
        .expect("found");
    assert!(!row.ai_processed && row.ai_summary.is_none(), "{row:?}");
}
