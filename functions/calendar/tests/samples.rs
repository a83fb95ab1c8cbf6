//! Every calendar function answers its `events/` samples as Lambda would hand them over,
//! on the embedded defaults (memory store, fixture provider, memory key-value store). The
//! samples carry a placeholder session token: as they are, they answer 401; with a live
//! session of `user123` in its place, they reach their handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use celeriac_calendar::CalendarBackend;
use celeriac_calendar::cache::CalendarCache;
use celeriac_calendar::config::{CalendarConfig, ProviderConfig};
use celeriac_calendar::http::{self as endpoints, CalendarApi};
use celeriac_calendar::provider::fixture::FixtureProvider;
use celeriac_calendar::store::MemoryCalendarStore;
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::schedule::{Tick, TickLock};
use celeriac_tasks::{InProcess, Outcome, Registry, Runner, TaskClient, TaskStore};
use serde_json::Value;

fn sample(path: &str) -> String {
    let path = format!("{}/../../events/{path}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect("events/ sample")
}

struct Dev {
    backend: CalendarBackend,
    kv: SharedKv,
    api: CalendarApi,
}

fn dev() -> Dev {
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let config = CalendarConfig {
        provider: ProviderConfig::Fixture,
        cache_ttl: Duration::from_secs(360),
        channel_ttl: Duration::from_secs(86_400),
        webhook_url: None,
        public_base_url: None,
        oauth_redirect_url: None,
    };
    let backend = CalendarBackend::new(
        Arc::new(MemoryCalendarStore::new()),
        Arc::new(FixtureProvider::new()),
        kv.clone(),
        CalendarCache::new(kv.clone(), config.cache_ttl),
        config,
    );
    let client = TaskClient::new(
        Arc::new(InProcess::default()),
        TaskStore::new(kv.clone()),
        "samples",
    );
    let api = CalendarApi::new(backend.clone(), Some(client));
    Dev { backend, kv, api }
}

/// `router` answering the API Gateway sample `events/{event}.json` as it is.
async fn call_as_is(router: Router, event: &str) -> (u16, Value) {
    let (function, case) = event.split_once('/').expect("function/case");
    celeriac_testkit::serve(router, celeriac_testkit::api_gateway_sample(function, case)).await
}

impl Dev {
    /// `router` answering the sample `events/{event}.json`, its placeholder session token
    /// (if it has one) replaced by a live session of the sample's user, `user123`.
    async fn call(&self, router: Router, event: &str) -> (u16, Value) {
        let (function, case) = event.split_once('/').expect("function/case");
        let mut request = celeriac_testkit::api_gateway_sample(function, case);
        if request.headers_mut().remove("authorization").is_some() {
            let session = Sessions::new(self.kv.clone(), SessionConfig::default())
                .create("user123", None)
                .await
                .expect("session");
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {}", session.token.as_str())
                    .parse()
                    .expect("header"),
            );
        }
        celeriac_testkit::serve(router, request).await
    }
}

#[tokio::test]
async fn each_http_function_answers_its_samples() {
    let d = dev();
    let (status, body) = d
        .call(
            endpoints::webhook_setup(d.api.clone()),
            "calendar_webhook_setup/primary",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], "user123");
    assert!(body["initial_sync_task_id"].is_string());
    // A calendar that is not in the user's calendar list is refused.
    let (status, body) = d
        .call(
            endpoints::webhook_setup(d.api.clone()),
            "calendar_webhook_setup/other-calendar",
        )
        .await;
    assert_eq!(status, 404, "{body}");

    for (event, expected) in [
        ("google_calendar_webhook/exists", 404),
        ("google_calendar_webhook/sync", 404),
        ("google_calendar_webhook/missing-channel", 400),
    ] {
        let (status, body) = d
            .call(endpoints::google_webhook(d.api.clone()), event)
            .await;
        assert_eq!(status, expected, "{event}: {body}");
    }
    let (status, body) = d
        .call(
            endpoints::webhook_status(d.api.clone()),
            "calendar_webhook_status/user",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["channels"].as_array().expect("channels").len(), 1);
    let (status, _) = d
        .call(
            endpoints::webhook_unsubscribe(d.api.clone()),
            "calendar_webhook_unsubscribe/channel",
        )
        .await;
    assert_eq!(status, 404, "no such channel");
    let (status, body) = d
        .call(endpoints::events(d.api.clone()), "calendar_events/user")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["events"], serde_json::json!([]), "not synced yet");
    let (status, _) = d
        .call(endpoints::events(d.api.clone()), "calendar_events/bad-user")
        .await;
    assert_eq!(status, 400);
    let (status, _) = d
        .call(endpoints::event(d.api.clone()), "calendar_event/one")
        .await;
    assert_eq!(status, 404);
    let (status, body) = d
        .call(
            endpoints::calendars(d.api.clone()),
            "calendar_calendars/user",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["calendars"][0]["id"], "primary");
    // The fixture has no Google account to connect; disconnecting forgets the channel.
    let (status, body) = d
        .call(endpoints::connect(d.api.clone()), "calendar_connect/user")
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = d
        .call(
            endpoints::oauth_callback(d.api.clone()),
            "calendar_oauth_callback/consented",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = d
        .call(
            endpoints::disconnect(d.api.clone()),
            "calendar_disconnect/user",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channels_stopped"], 1);
    assert_eq!(body["revoked"], false);
}

#[tokio::test]
async fn the_samples_placeholder_session_is_refused() {
    let d = dev();
    for event in [
        "calendar_webhook_setup/primary",
        "calendar_webhook_status/user",
        "calendar_webhook_unsubscribe/channel",
        "calendar_events/user",
        "calendar_event/one",
        "calendar_calendars/user",
        "calendar_connect/user",
        "calendar_oauth_callback/consented",
        "calendar_disconnect/user",
    ] {
        let (status, body) = call_as_is(endpoints::all(d.api.clone()), event).await;
        assert_eq!(status, 401, "{event}: {body}");
    }
}

#[tokio::test]
async fn the_task_functions_take_their_samples() {
    let d = dev();
    let registry = Arc::new(d.backend.register(Registry::new()));
    let runner = Runner::new(registry.clone(), d.kv.clone());
    let sqs: Value =
        serde_json::from_str(&sample("process_calendar_webhook/notification")).expect("SQS event");
    let body = sqs["Records"][0]["body"].as_str().expect("body");
    // Its channel is unknown here: acknowledged and ignored, not retried.
    assert_eq!(runner.execute(body.as_bytes(), 1, None).await, Outcome::Ack);
    let record = runner
        .store()
        .get("5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
        .await
        .expect("store")
        .expect("record");
    assert_eq!(record.result.expect("report")["status"], "ignored");

    let tick: Tick = serde_json::from_str(&sample("renew_calendar_channels/tick")).expect("tick");
    celeriac_tasks::lambda::run_tick(
        &runner,
        &registry,
        &TickLock::new(d.kv.clone()),
        &tick,
        None,
    )
    .await
    .expect("tick runs");
}
