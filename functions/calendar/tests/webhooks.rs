//! Notifications end to end, on real parts: the endpoints over PostgreSQL and Redis, the
//! Google adapter against the local API stand-in, and `process_calendar_webhook` run by a
//! worker over the in-process transport (the runner and retry policy every transport
//! shares). The stand-in serves one account for every user here (single-tenant mode);
//! each user's own account is `connect.rs`. Requests carry the user's session.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use celeriac_cache::CacheConfig;
use celeriac_calendar::CalendarBackend;
use celeriac_calendar::cache::CalendarCache;
use celeriac_calendar::config::{CalendarConfig, ProviderConfig};
use celeriac_calendar::http::{self as endpoints, CalendarApi};
use celeriac_calendar::postgres::PgCalendarStore;
use celeriac_calendar::store::SharedCalendarStore;
use celeriac_kv::{RedisKv, SharedKv};
use celeriac_platform::config::HttpConfig;
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::{
    InProcess, Registry, Runner, TaskClient, TaskRecord, TaskState, TaskStore, Transport, Worker,
};
use http_body_util::BodyExt;
use serde_json::Value;
use support::GoogleStandin;
use tower::ServiceExt;

struct Harness {
    app: Router,
    standin: GoogleStandin,
    store: SharedCalendarStore,
    tasks: TaskStore,
    transport: Arc<InProcess>,
    stop_worker: Option<tokio::sync::oneshot::Sender<()>>,
    user: String,
    /// The user's session token.
    session: String,
}

struct Answer {
    status: u16,
    headers: ::http::HeaderMap,
    body: Value,
}

async fn harness(with_worker: bool) -> Option<Harness> {
    let pool = support::postgres_pool().await?;
    let redis = celeriac_testkit::redis_single()?;
    let kv: SharedKv = Arc::new(RedisKv::open(&redis).await.expect("redis"));
    let standin = GoogleStandin::start(2).await;
    let store: SharedCalendarStore = Arc::new(PgCalendarStore::new(pool));
    let cache = CalendarCache::with_config(
        kv.clone(),
        CacheConfig {
            prefix: celeriac_testkit::unique_prefix("calendar"),
            ..CacheConfig::default()
        },
        Duration::from_secs(360),
    );
    let config = CalendarConfig {
        provider: ProviderConfig::Google(standin.config()),
        cache_ttl: Duration::from_secs(360),
        channel_ttl: Duration::from_secs(7 * 86_400),
        webhook_url: Some("https://api.example.test/webhook/google-calendar".into()),
        public_base_url: None,
        oauth_redirect_url: None,
    };
    let backend =
        CalendarBackend::new(store.clone(), standin.provider(), kv.clone(), cache, config);
    let transport = Arc::new(InProcess::new(Duration::from_secs(30)));
    let tasks = TaskStore::new(kv.clone());
    let client = TaskClient::new(transport.clone(), tasks.clone(), "calendar test");
    let registry = Arc::new(backend.register(Registry::new()));
    let stop_worker = with_worker.then(|| {
        let worker = Worker::new(
            transport.clone(),
            Runner::new(registry, kv.clone()),
            vec!["calendar".into()],
            4,
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(worker.run(async {
            let _ = rx.await;
        }));
        tx
    });
    let app = celeriac_platform::http::app(
        endpoints::all(CalendarApi::new(backend, Some(client))),
        &HttpConfig::default(),
    );
    let user = format!("mei-{}", uuid::Uuid::new_v4().simple());
    let session = Sessions::new(kv.clone(), SessionConfig::default())
        .create(&user, None)
        .await
        .expect("session")
        .token
        .as_str()
        .to_owned();
    Some(Harness {
        app,
        standin,
        store,
        tasks,
        transport,
        stop_worker,
        user,
        session,
    })
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_worker.take() {
            let _ = stop.send(());
        }
    }
}

impl Harness {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = ::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.session));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sets up a channel for the user; returns (channel id, token Google was given,
    /// resource id, initial sync task id).
    async fn set_up(&self) -> (String, String, String, Option<String>) {
        let answer = self
            .call("POST", &format!("/webhook/setup/{}", self.user), &[])
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        let channel_id = answer.body["channel_id"].as_str().expect("id").to_owned();
        let given = self
            .standin
            .channel(&channel_id)
            .expect("watched at Google");
        assert_eq!(
            given.address,
            "https://api.example.test/webhook/google-calendar"
        );
        (
            channel_id,
            given.token,
            given.resource_id,
            answer.body["initial_sync_task_id"]
                .as_str()
                .map(str::to_owned),
        )
    }

    async fn notify(
        &self,
        channel: &str,
        token: &str,
        resource: &str,
        state: &str,
        number: &str,
    ) -> Answer {
        self.call(
            "POST",
            "/webhook/google-calendar",
            &[
                ("X-Goog-Channel-ID", channel),
                ("X-Goog-Channel-Token", token),
                ("X-Goog-Resource-ID", resource),
                ("X-Goog-Resource-State", state),
                ("X-Goog-Message-Number", number),
                (
                    "X-Goog-Resource-URI",
                    "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
                ),
            ],
        )
        .await
    }

    async fn final_record(&self, task_id: &str) -> TaskRecord {
        for _ in 0..600 {
            if let Some(record) = self.tasks.get(task_id).await.expect("task store")
                && record.status.is_final()
            {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {task_id} did not finish");
    }

    async fn summary_of(&self, event_id: &str) -> Answer {
        self.call(
            "GET",
            &format!("/calendar/{}/events/{event_id}", self.user),
            &[],
        )
        .await
    }
}

fn header(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_notification_and_its_duplicate_sync_once_and_the_next_read_shows_the_change() {
    let Some(h) = harness(true).await else { return };
    h.standin
        .put_event("primary", "sencha", "Sencha tasting", 3);
    h.standin.put_event("primary", "review", "Weekly review", 4);
    let (channel, token, resource, initial) = h.set_up().await;
    let initial = h
        .final_record(&initial.expect("initial sync enqueued"))
        .await;
    assert_eq!(initial.status, TaskState::Success, "{initial:?}");
    assert_eq!(initial.result.as_ref().expect("report")["full_sync"], true);

    // Google's first message on a channel: acknowledged, not processed.
    let sync = h.notify(&channel, &token, &resource, "sync", "1").await;
    assert_eq!(sync.status, 200, "{}", sync.body);
    assert_eq!(sync.body["status"], "acknowledged");

    let first = h.summary_of("sencha").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["event"]["summary"], "Sencha tasting");
    assert_eq!(header(&first, "x-cache-misses"), "1");
    let cached = h.summary_of("sencha").await;
    assert_eq!(header(&cached, "x-cache-hits"), "1");
    let list = h
        .call("GET", &format!("/calendar/{}/events", h.user), &[])
        .await;
    assert_eq!(list.body["events"].as_array().expect("events").len(), 2);

    h.standin
        .put_event("primary", "sencha", "Matcha tasting", 3);
    let calls_before = h.standin.list_calls();
    let accepted = h.notify(&channel, &token, &resource, "exists", "2").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let duplicate = h.notify(&channel, &token, &resource, "exists", "2").await;
    assert_eq!(duplicate.status, 202, "{}", duplicate.body);
    let task = accepted.body["task_id"].as_str().expect("task id");
    let record = h.final_record(task).await;
    assert_eq!(record.status, TaskState::Success, "{record:?}");
    // The duplicate either found the first processed, or ran under the same
    // idempotency key and was answered with its result.
    if let Some(second) = duplicate.body["task_id"].as_str() {
        let second = h.final_record(second).await;
        assert_eq!(second.status, TaskState::Success);
        assert_eq!(second.result, record.result);
    } else {
        assert_eq!(duplicate.body["status"], "already_processed");
    }
    assert_eq!(
        h.standin.list_calls() - calls_before,
        1,
        "one incremental sync (one page)"
    );

    let changed = h.summary_of("sencha").await;
    assert_eq!(changed.body["event"]["summary"], "Matcha tasting");
    let list = h
        .call("GET", &format!("/calendar/{}/events", h.user), &[])
        .await;
    let summaries: Vec<&str> = list.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert!(summaries.contains(&"Matcha tasting"), "{summaries:?}");

    // Out of order: 4 is processed, then 3 arrives late and is ignored.
    h.standin
        .put_event("primary", "review", "Monthly review", 4);
    let fourth = h.notify(&channel, &token, &resource, "exists", "4").await;
    h.final_record(fourth.body["task_id"].as_str().expect("id"))
        .await;
    let calls = h.standin.list_calls();
    let late = h.notify(&channel, &token, &resource, "exists", "3").await;
    assert_eq!(late.status, 202);
    assert_eq!(late.body["status"], "already_processed");
    assert_eq!(h.standin.list_calls(), calls);

    let status = h
        .call("GET", &format!("/webhook/status/{}", h.user), &[])
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["channels"][0]["channel_id"], channel.as_str());
    assert_eq!(status.body["channels"][0]["last_message_number"], 4);
    assert_eq!(status.body["sync"]["has_sync_token"], true);
    assert!(!status.body["sync"]["last_synced_at"].is_null());
}

#[tokio::test]
async fn a_wrong_token_or_an_unknown_channel_enqueues_nothing() {
    let Some(h) = harness(false).await else {
        return;
    };
    let (channel, token, resource, _) = h.set_up().await;
    // Take the initial sync off the queue: what is left afterwards was enqueued below.
    let initial = h
        .transport
        .receive("calendar", 10, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(initial.len(), 1);

    let wrong = h
        .notify(&channel, "not-the-token", &resource, "exists", "2")
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let almost = h
        .notify(
            &channel,
            &token[..token.len() - 1],
            &resource,
            "exists",
            "2",
        )
        .await;
    assert_eq!(almost.status, 403);
    let missing = h
        .call(
            "POST",
            "/webhook/google-calendar",
            &[
                ("X-Goog-Channel-ID", channel.as_str()),
                ("X-Goog-Resource-State", "exists"),
                ("X-Goog-Message-Number", "2"),
            ],
        )
        .await;
    assert_eq!(missing.status, 400, "no token is a malformed notification");
    let other_resource = h
        .notify(&channel, &token, "another-resource", "exists", "2")
        .await;
    assert_eq!(other_resource.status, 403);
    let unknown = h
        .notify(
            &uuid::Uuid::new_v4().to_string(),
            &token,
            &resource,
            "exists",
            "2",
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let garbled = h.notify(&channel, &token, &resource, "exists", "two").await;
    assert_eq!(garbled.status, 400);
    let bad_state = h.notify(&channel, &token, &resource, "changed", "2").await;
    assert_eq!(bad_state.status, 400);
    assert_eq!(wrong.body["error"]["code"], "forbidden");

    let queued = h
        .transport
        .receive("calendar", 10, Duration::ZERO)
        .await
        .expect("receive");
    assert!(queued.is_empty(), "nothing enqueued: {queued:?}");
    assert_eq!(h.standin.list_calls(), 0, "nothing synced");
    assert_eq!(
        h.store
            .channel(&channel)
            .await
            .expect("channel")
            .expect("kept")
            .last_message_number,
        None
    );
}

#[tokio::test]
async fn a_failing_provider_is_retried_three_times_then_dead_lettered() {
    let Some(h) = harness(true).await else { return };
    h.standin
        .put_event("primary", "sencha", "Sencha tasting", 3);
    let (channel, token, resource, initial) = h.set_up().await;
    h.final_record(&initial.expect("initial")).await;

    h.standin
        .put_event("primary", "sencha", "Matcha tasting", 3);
    h.standin.fail_lists_with(Some(500));
    let calls_before = h.standin.list_calls();
    let accepted = h.notify(&channel, &token, &resource, "exists", "2").await;
    assert_eq!(accepted.status, 202);
    let record = h
        .final_record(accepted.body["task_id"].as_str().expect("id"))
        .await;
    assert_eq!(record.status, TaskState::Failure, "{record:?}");
    assert_eq!(record.retries, 3);
    assert!(
        record.error.as_deref().is_some_and(|e| e.contains("500")),
        "{record:?}"
    );
    assert_eq!(
        h.standin.list_calls() - calls_before,
        4,
        "1 attempt + 3 retries"
    );
    let dead = h.transport.dead_letters("calendar");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let body: Value = serde_json::from_slice(&dead[0].0).expect("envelope");
    assert_eq!(body["task"], "process_calendar_webhook");
    assert_eq!(body["args"]["channel_id"], channel.as_str());

    // Nothing was applied: the old event, and the notification still unprocessed.
    assert_eq!(
        h.summary_of("sencha").await.body["event"]["summary"],
        "Sencha tasting"
    );
    let stored = h.store.channel(&channel).await.expect("get").expect("kept");
    assert_eq!(stored.last_message_number, None);
}

#[tokio::test]
async fn an_expired_sync_token_starts_a_full_resync() {
    let Some(h) = harness(true).await else { return };
    for (id, name) in [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D"), ("e", "E")] {
        h.standin.put_event("primary", id, name, 5);
    }
    let (channel, token, resource, initial) = h.set_up().await;
    h.final_record(&initial.expect("initial")).await;
    assert_eq!(h.summary_of("b").await.body["event"]["summary"], "B");

    h.standin.expire_sync_tokens("primary");
    h.standin.delete_event("primary", "b");
    h.standin.put_event("primary", "c", "C, moved", 6);
    let calls_before = h.standin.list_calls();
    let accepted = h.notify(&channel, &token, &resource, "exists", "2").await;
    let record = h
        .final_record(accepted.body["task_id"].as_str().expect("id"))
        .await;
    assert_eq!(record.status, TaskState::Success, "{record:?}");
    let report = record.result.expect("report");
    assert_eq!(report["full_sync"], true, "{report}");
    assert_eq!(report["deleted"], 1, "{report}");
    // The 410, then the full list: 4 events, 2 a page.
    assert_eq!(h.standin.list_calls() - calls_before, 3);

    assert_eq!(h.summary_of("b").await.status, 404, "b is gone");
    assert_eq!(h.summary_of("c").await.body["event"]["summary"], "C, moved");
    let list = h
        .call("GET", &format!("/calendar/{}/events", h.user), &[])
        .await;
    assert_eq!(list.body["events"].as_array().expect("events").len(), 4);
    let state = h
        .store
        .sync_state(&h.user)
        .await
        .expect("state")
        .expect("kept");
    assert!(state.sync_token.is_some());
}

#[tokio::test]
async fn unsubscribing_stops_the_channel_at_google_and_forgets_it() {
    let Some(h) = harness(true).await else { return };
    let (channel, token, resource, initial) = h.set_up().await;
    h.final_record(&initial.expect("initial")).await;
    let gone = h
        .call("DELETE", &format!("/webhook/unsubscribe/{channel}"), &[])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(h.standin.channel(&channel).is_none(), "stopped at Google");
    let again = h
        .call("DELETE", &format!("/webhook/unsubscribe/{channel}"), &[])
        .await;
    assert_eq!(again.status, 404);
    let late = h.notify(&channel, &token, &resource, "exists", "2").await;
    assert_eq!(late.status, 404, "{}", late.body);
    let status = h
        .call("GET", &format!("/webhook/status/{}", h.user), &[])
        .await;
    assert_eq!(
        status.body["channels"].as_array().expect("channels").len(),
        0
    );
    let calendars = h
        .call("GET", &format!("/calendar/{}/calendars", h.user), &[])
        .await;
    assert_eq!(calendars.status, 200);
    assert_eq!(calendars.body["calendars"][0]["primary"], true);
    let bad = h.call("GET", "/calendar/not%20a%20user/events", &[]).await;
    assert_eq!(bad.status, 400);
}
