//! The wellness sample events are what the functions receive: queue samples are envelopes
//! of registered tasks, schedule samples ticks naming them, and the read endpoints answer
//! their HTTP samples.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use celeriac_kv::MemoryKv;
use celeriac_llm::LocalEngine;
use celeriac_tasks::Registry;
use celeriac_tasks::schedule::Tick;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::http::{self, WellnessApi};
use tower::ServiceExt;

fn sample(function: &str, case: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../events/{function}/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("events/ sample")
}

fn backend() -> WellnessBackend {
    WellnessBackend::new(Arc::new(MemoryKv::new()), Arc::new(LocalEngine::new()))
}

#[test]
fn queue_and_schedule_samples_name_registered_tasks() {
    let registry = backend().register(Registry::new());
    for function in [
        "extract_topic_from_message",
        "update_user_recommendations",
        "generate_content_for_topic",
    ] {
        let case = std::fs::read_dir(format!(
            "{}/../../events/{function}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("samples")
        .next()
        .expect("a sample")
        .expect("entry")
        .path();
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(case).expect("read")).expect("SQS");
        let body = event.records[0].body.as_deref().expect("body");
        let envelope: celeriac_tasks::Envelope = serde_json::from_str(body).expect("envelope");
        assert_eq!(envelope.task, function);
        let task = registry.get(function).expect("registered");
        assert_eq!(
            envelope.queue,
            task.spec().queue,
            "{function} travels its own queue"
        );
    }
    for function in [
        "generate_daily_content",
        "update_popular_topics",
        "cleanup_old_content",
    ] {
        let tick: Tick = serde_json::from_str(&sample(function, "tick")).expect("tick");
        assert_eq!(tick.task, function);
        assert!(registry.get(function).is_some(), "{function}");
    }
}

#[tokio::test]
async fn the_read_endpoints_answer_their_samples() {
    let api = WellnessApi::new(backend(), None, None);
    // The user samples are user 42's: they answer 42's session, and no one else.
    let session = |user: &'static str| {
        let sessions = api.sessions.clone();
        async move {
            let created = sessions.create(user, None).await.expect("session");
            created.token.as_str().to_owned()
        }
    };
    let own = session("42").await;
    let other = session("43").await;
    for (function, case, bearer, expected) in [
        ("user_topic", "get", Some(&own), 200),
        ("user_recommendations", "get", Some(&own), 200),
        ("user_topic", "get", None, 401),
        ("user_recommendations", "get", None, 401),
        ("user_topic", "get", Some(&other), 404),
        ("user_recommendations", "get", Some(&other), 404),
        ("content_articles", "topic", None, 200),
        ("content_videos", "topic", None, 200),
        ("content_quotes", "topic", None, 200),
    ] {
        let request = match bearer {
            Some(token) => celeriac_testkit::api_gateway_sample_as(function, case, token),
            None => celeriac_testkit::api_gateway_sample(function, case),
        };
        let app = celeriac_platform::http::app(http::all(api.clone()), &Default::default());
        let response = app.oneshot(request).await.expect("response");
        assert_eq!(
            response.status(),
            expected,
            "{function}/{case} as {bearer:?}"
        );
    }
}
