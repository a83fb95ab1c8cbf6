//! The wellness functions as Lambda runs them, on real parts: `POST /chat` from its API
//! Gateway sample event enqueues to SQS (moto), the queue-triggered handler runs the
//! tasks with their state in Redis, and the topic and recommendation endpoints answer
//! their sample events. A duplicate delivery of the topic message changes nothing.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use celeriac_kv::{RedisKv, SharedKv};
use celeriac_llm::{CachedLlm, SharedLlm};
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::sqs::handle_batch;
use celeriac_tasks::{Registry, Runner, SqsTransport, TaskClient, TaskState, TaskStore};
use celeriac_testkit::{api_gateway_sample, api_gateway_sample_as, serve};
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::http::{self, WellnessApi};

async fn count_of(backend: &WellnessBackend, topic: &str) -> u64 {
    let today = chrono::Utc::now().date_naive();
    let ranking = backend.rank_topics(today).await.expect("rank");
    ranking
        .iter()
        .find(|p| p.topic == topic)
        .map_or(0, |p| p.count)
}

#[tokio::test]
async fn chat_enqueues_on_sqs_and_the_queue_function_stores_the_topic_once() {
    // Redis database 8 is this test's: the sample events name user 42.
    let (Some(redis), Some(sdk)) = (
        celeriac_testkit::redis_single_db(8),
        celeriac_testkit::moto_sdk().await,
    ) else {
        return;
    };
    let kv: SharedKv = Arc::new(RedisKv::open(&redis).await.expect("open"));

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let prefix = format!("w{}-", celeriac_testkit::free_port());
    let urls = celeriac_testkit::sqs_queues(
        &sqs,
        &prefix,
        &["wellness-topics", "wellness-recommendations"],
    )
    .await;

    let llm: SharedLlm = Arc::new(CachedLlm::new(
        Arc::new(celeriac_llm::LocalEngine::new()),
        celeriac_cache::Cache::new(kv.clone(), celeriac_cache::CacheConfig::default()),
        celeriac_llm::cached::DEFAULT_TTL,
    ));
    let backend = WellnessBackend::new(kv.clone(), llm);
    let before = count_of(&backend, "стресс").await;
    let transport = Arc::new(SqsTransport::new(&sdk, prefix.clone()));
    let client = TaskClient::new(transport, TaskStore::new(kv.clone()), "wellness_chat");
    let api = WellnessApi::new(backend.clone(), Some(client), None);
    // The samples are user 42's: without a session they are refused, with 42's they run.
    let (status, _) = serve(
        http::chat(api.clone()),
        api_gateway_sample("wellness_chat", "russian"),
    )
    .await;
    assert_eq!(status, 401);
    let sessions = Sessions::new(kv.clone(), SessionConfig::default());
    let session = sessions.create("42", None).await.expect("session");
    let token = session.token.as_str();

    let (status, answer) = serve(
        http::chat(api.clone()),
        api_gateway_sample_as("wellness_chat", "russian", token),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["language"], "ru");
    let topic_task = answer["task_ids"]["extract_topic_from_message"]
        .as_str()
        .expect("task id")
        .to_owned();

    // The queue functions: each queue's batch through the SQS handler.
    let runner = Runner::new(Arc::new(backend.register(Registry::new())), kv.clone());
    let handler_sqs = SqsTransport::new(&sdk, prefix.clone());
    let mut topic_event = None;
    for url in &urls {
        let event = celeriac_testkit::sqs_event(&sqs, url, 1).await;
        let batch: SqsEvent = serde_json::from_value(event.clone()).expect("SQS event");
        let response = handle_batch(&runner, &handler_sqs, batch, None).await;
        assert!(response.batch_item_failures.is_empty(), "{url}");
        if url.ends_with("wellness-topics") {
            topic_event = Some(event);
        }
    }
    let record = TaskStore::new(kv.clone())
        .get(&topic_task)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Success);
    assert_eq!(record.owner.as_deref(), Some("42"), "enqueued for its user");

    let (status, topic) = serve(
        http::user_topic(api.clone()),
        api_gateway_sample_as("user_topic", "get", token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(topic["topic"], "стресс", "{topic}");
    let (_, recommendations) = serve(
        http::recommendations(api.clone()),
        api_gateway_sample_as("user_recommendations", "get", token),
    )
    .await;
    assert_eq!(
        recommendations["topic"]["label"], "стресс",
        "{recommendations}"
    );
    assert_eq!(count_of(&backend, "стресс").await, before + 1);

    // SQS delivers at least once: the same message again is acknowledged, not rerun.
    let again: SqsEvent =
        serde_json::from_value(topic_event.expect("topic message")).expect("SQS event");
    let response = handle_batch(&runner, &handler_sqs, again, None).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        count_of(&backend, "стресс").await,
        before + 1,
        "the duplicate was not counted"
    );
}
