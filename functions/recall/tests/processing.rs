//! `process_conversation_ai` and the endpoints on real parts: priorities routed to their
//! SQS queues (moto), a duplicate delivery processed once, an unusable model answer
//! (llm-katan) stored nowhere, and a queue outage at creation deferred to the retry
//! schedule.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Body;
use axum::http::{Request, header};
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_llm::{
    BedrockLlm, BedrockSettings, ChatReply, ChatRequest, Content, ContentRequest,
    ConversationAnalysis, Llm, LlmError, LocalEngine, Topic,
};
use celeriac_recall::http::{self, RecallApi};
use celeriac_recall::store::Priority;
use celeriac_recall::tasks::RetryDeferredConversations;
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::sqs::handle_batch;
use celeriac_tasks::{SqsTransport, Task, TaskClient, TaskStore};
use serde_json::{Value, json};
use support::{attempt, backend, create, runner};

/// The local engine, counting the analyses that reach it.
#[derive(Debug, Default)]
struct Counted {
    engine: LocalEngine,
    analyses: AtomicUsize,
}

#[async_trait]
impl Llm for Counted {
    fn adapter(&self) -> &'static str {
        self.engine.adapter()
    }
    fn model(&self) -> &str {
        self.engine.model()
    }
    async fn chat_reply(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        self.engine.chat_reply(request).await
    }
    async fn extract_topic(&self, message: &str) -> Result<Topic, LlmError> {
        self.engine.extract_topic(message).await
    }
    async fn generate_content(&self, request: &ContentRequest) -> Result<Content, LlmError> {
        self.engine.generate_content(request).await
    }
    async fn analyse_conversation(&self, text: &str) -> Result<ConversationAnalysis, LlmError> {
        self.analyses.fetch_add(1, Ordering::SeqCst);
        self.engine.analyse_conversation(text).await
    }
}

const DEADLINE: &str = "Anna: We need to submit the Q3 report to the board by Friday.\n\
                        Ben: I'll send the marketing numbers by Wednesday.";

#[tokio::test]
async fn a_high_priority_conversation_travels_its_queue_and_a_duplicate_runs_once() {
    let Some(sdk) = celeriac_testkit::moto_sdk().await else {
        return;
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let prefix = format!("r{}-", celeriac_testkit::free_port());
    let urls = celeriac_testkit::sqs_queues(
        &sqs,
        &prefix,
        &["recall-ai-high", "recall-ai", "recall-ai-low"],
    )
    .await;
    let counted = Arc::new(Counted::default());
    let backend = backend(counted.clone());
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let transport = Arc::new(SqsTransport::new(&sdk, prefix.clone()));
    let client = TaskClient::new(transport, TaskStore::new(kv.clone()), "conversation_create");

    let id = create(&backend, "mei", Priority::High, DEADLINE).await;
    let conversation = backend.store.get(id).await.expect("get").expect("found");
    backend
        .enqueue(&client, &conversation)
        .await
        .expect("enqueued");

    // The message is on the high queue, and the other two are empty.
    let event = celeriac_testkit::sqs_event(&sqs, &urls[0], 1).await;
    for url in &urls[1..] {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .send()
            .await
            .expect("receive");
        assert!(out.messages.unwrap_or_default().is_empty(), "{url}");
    }

    let runner = runner(&backend, kv);
    let handler = SqsTransport::new(&sdk, prefix);
    let batch: SqsEvent = serde_json::from_value(event.clone()).expect("event");
    assert!(
        handle_batch(&runner, &handler, batch, None)
            .await
            .batch_item_failures
            .is_empty()
    );
    let processed = backend.store.get(id).await.expect("get").expect("found");
    assert!(processed.ai_processed);
    assert!(
        processed
            .ai_action_items
            .iter()
            .any(|item| item.contains("by Friday")),
        "{processed:?}"
    );
    assert!(
        processed
            .ai_summary
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(counted.analyses.load(Ordering::SeqCst), 1);

    // SQS delivers at least once: the same message again changes nothing.
    let again: SqsEvent = serde_json::from_value(event).expect("event");
    assert!(
        handle_batch(&runner, &handler, again, None)
            .await
            .batch_item_failures
            .is_empty()
    );
    // And a second run of the task (a retry after a lost acknowledgement) neither asks
    // the model nor writes.
    let rerun = backend.process(id).await.expect("process");
    assert!(!rerun.stored);
    assert_eq!(
        counted.analyses.load(Ordering::SeqCst),
        1,
        "the model was asked once"
    );
    assert_eq!(
        backend.store.get(id).await.expect("get").expect("found"),
        processed,
        "the row is unchanged"
    );
}

#[tokio::test]
async fn an_unusable_model_answer_fails_the_task_and_stores_nothing() {
    // An llm-katan that answers text even when the analysis tool is required.
    let Some(katan) = celeriac_testkit::LlmKatan::start(&["--no-auto-tool-providers", "bedrock"])
    else {
        return;
    };
    let model = celeriac_testkit::standin("CELERIAC_TEST_BEDROCK_MODEL").unwrap_or_default();
    let llm = BedrockLlm::new(
        &celeriac_testkit::sdk_at(katan.url.clone()).await,
        BedrockSettings::new(model),
    );
    let backend = backend(Arc::new(llm));
    let id = create(&backend, "mei", Priority::Default, DEADLINE).await;
    let task = celeriac_recall::tasks::ProcessConversationAi(backend.clone());
    let ctx = attempt(0);
    let err = task
        .run(
            celeriac_recall::tasks::ConversationArgs {
                conversation_id: id,
            },
            &ctx,
        )
        .await
        .expect_err("an unusable answer fails");
    assert!(!err.is_retryable(), "retrying the same input cannot help");
    assert!(err.to_string().contains("record_analysis"), "{err}");
    let row = backend.store.get(id).await.expect("get").expect("found");
    assert!(!row.ai_processed);
    assert!(row.ai_summary.is_none() && row.ai_action_items.is_empty());
}

async fn call(
    router: axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request");
    celeriac_testkit::serve(router, request).await
}

#[tokio::test]
async fn a_queue_outage_defers_creation_and_the_schedule_enqueues_it_later() {
    let Some(sdk) = celeriac_testkit::moto_sdk().await else {
        return;
    };
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let sessions = Sessions::new(kv.clone(), SessionConfig::default());
    let mei = sessions.create("mei", None).await.expect("session").token;
    let ken = sessions.create("ken", None).await.expect("session").token;
    let backend = backend(Arc::new(LocalEngine::new()));
    // The queue is down: SQS at an address where nothing listens.
    let down =
        celeriac_testkit::sdk_at(format!("http://{}", celeriac_testkit::dead_address())).await;
    let broken = TaskClient::new(
        Arc::new(SqsTransport::new(&down, "")),
        TaskStore::new(kv.clone()),
        "conversation_create",
    );
    let api = RecallApi {
        backend: backend.clone(),
        sessions,
        client: Some(broken),
    };
    let router = || http::all(api.clone());
    let body = json!({"content": DEADLINE, "priority": "low", "title": "Q3"});

    let (status, _) = call(
        router(),
        "POST",
        "/api/conversations/",
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 401, "a session is required");
    let too_long = "a".repeat(http::MAX_CONTENT_CHARS + 1);
    for (bad, field) in [
        (json!({"content": "  "}), "content"),
        (json!({"title": "Q3"}), "content"),
        (json!({"content": too_long}), "content"),
        (json!({"content": 42}), "invalid type"),
        (json!({"content": "x", "priority": "urgent"}), "priority"),
        (json!({"content": "x", "priority": 9}), "invalid type"),
        (json!({"content": "x", "title": "t".repeat(201)}), "title"),
        (json!({"content": "x", "colour": "red"}), "colour"),
    ] {
        let (status, error) = call(
            router(),
            "POST",
            "/api/conversations/",
            Some(mei.as_str()),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{error}"
        );
    }
    assert!(
        backend
            .store
            .enqueue_pending(10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        backend.store.get(1).await.expect("get"),
        None,
        "bad input stored nothing"
    );

    let (status, created) = call(
        router(),
        "POST",
        "/api/conversations/",
        Some(mei.as_str()),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["processing"], "deferred");
    assert_eq!(created["ai_enqueue_pending"], true);
    assert!(created["task_id"].is_null());
    let id = created["id"].as_i64().expect("id");
    let path = format!("/api/conversations/{id}/");
    let (status, shown) = call(router(), "GET", &path, Some(mei.as_str()), None).await;
    assert_eq!((status, &shown["content"]), (200, &json!(DEADLINE)));
    let (status, _) = call(router(), "GET", &path, Some(ken.as_str()), None).await;
    assert_eq!(status, 404, "another user's conversation is not found");
    let (status, _) = call(
        router(),
        "GET",
        "/api/conversations/abc/",
        Some(mei.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The queue is back: the schedule enqueues the deferred analysis on its low queue.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let prefix = format!("d{}-", celeriac_testkit::free_port());
    let urls = celeriac_testkit::sqs_queues(&sqs, &prefix, &["recall-ai-low"]).await;
    let working = TaskClient::new(
        Arc::new(SqsTransport::new(&sdk, prefix)),
        TaskStore::new(kv),
        "retry_deferred_conversations",
    );
    let retry = RetryDeferredConversations {
        backend: backend.clone(),
        client: Some(working),
    };
    let ctx = attempt(0);
    let report = retry
        .run(Default::default(), &ctx)
        .await
        .expect("retry run");
    assert_eq!(report.enqueued, [id]);
    assert_eq!(report.still_deferred, 0);
    assert!(
        backend
            .store
            .enqueue_pending(10)
            .await
            .expect("list")
            .is_empty()
    );
    let event = celeriac_testkit::sqs_event(&sqs, &urls[0], 1).await;
    assert!(
        event["Records"][0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("process_conversation_ai"))
    );
}

#[tokio::test]
async fn the_sample_events_reach_the_handlers() {
    let sample = |function: &str, case: &str| {
        std::fs::read_to_string(format!(
            "{}/../../events/{function}/{case}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("events/ sample")
    };
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let api = RecallApi {
        backend: backend(Arc::new(LocalEngine::new())),
        sessions: Sessions::new(kv, SessionConfig::default()),
        client: None,
    };
    // The samples carry a placeholder Bearer token, which no session has.
    for (function, case) in [
        ("conversation_create", "deadline"),
        ("conversation_show", "one"),
    ] {
        let request = celeriac_testkit::api_gateway_sample(function, case);
        let (status, _) = celeriac_testkit::serve(http::all(api.clone()), request).await;
        assert_eq!(status, 401, "{function}/{case} reached its route");
    }
    // The queue samples are envelopes the runner accepts.
    for (function, case, task) in [
        ("process_conversation_ai", "high", "process_conversation_ai"),
        (
            "batch_process_conversations",
            "three",
            "batch_process_conversations",
        ),
    ] {
        let event: SqsEvent = serde_json::from_str(&sample(function, case)).expect("SQS event");
        let body = event.records[0].body.as_deref().expect("body");
        let envelope: celeriac_tasks::Envelope = serde_json::from_str(body).expect("envelope");
        assert_eq!(envelope.task, task);
    }
}
