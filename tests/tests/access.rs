//! Who may call what, for every route of the OpenAPI document, on `celeriac dev`.
//!
//! The document states each operation's rule in `security`: none is public, `session`
//! is the caller's own data, `{}` beside `session` is public with more shown to the right
//! session (a task's status). This test reads the rule from the document and holds the
//! running system to it:
//! - a public operation is in [`PUBLIC`] (so making a route public is a decision written
//!   here, not an omission) and answers without a session;
//! - a session operation answers 401 without one, and, called with another user's
//!   session on the first user's data, answers 404 and changes nothing.
//!
//! Every operation needs an entry in [`probe`]; a new route without one fails this test,
//! and so does a route whose document and behaviour disagree.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use celeriac_testkit::DevServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Client, json_of, outbox_dir, signed_up, unique_email, user_id_of};

/// The operations anyone may call, and why.
const PUBLIC: &[(&str, &str)] = &[
    ("health", "a load balancer's probe; shows no user data"),
    ("shop_skus", "the catalogue"),
    ("content_articles", "the catalogue"),
    ("content_videos", "the catalogue"),
    ("content_quotes", "the catalogue"),
    ("user_registration", "how a user gets an account"),
    (
        "user_registration_resend",
        "answers the same whether or not an account waits",
    ),
    (
        "user_confirm_page",
        "the mailed link's page; changes nothing",
    ),
    ("user_confirm", "checked by the mailed token"),
    (
        "user_password_forgot",
        "answers the same whether or not the address exists",
    ),
    (
        "user_password_reset_page",
        "the mailed link's page; changes nothing",
    ),
    ("user_password_reset", "checked by the mailed token"),
    ("user_login", "how a user gets a session"),
    ("user_refresh", "checked by the refresh token"),
    (
        "google_calendar_webhook",
        "Google's push, checked by the channel token",
    ),
];

/// The first user's data that the second user tries to reach.
struct Victim {
    token: String,
    user_id: String,
    order_id: String,
    conversation_id: i64,
    /// A task enqueued on the victim's behalf (the chat's topic analysis).
    task_id: String,
    /// The victim's calendar watch channel (the fixture calendar of `celeriac dev`).
    channel_id: String,
}

/// One request: method, path and body.
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn get(path: String) -> Probe {
    Probe {
        method: Method::GET,
        path,
        body: None,
    }
}

fn post(path: String, body: Value) -> Probe {
    Probe {
        method: Method::POST,
        path,
        body: Some(body),
    }
}

fn delete(path: String) -> Probe {
    Probe {
        method: Method::DELETE,
        path,
        body: None,
    }
}

/// Per operation: the request to send, and whether it names the victim's data. A request
/// that does (`true`) is sent anonymously and with the other user's session, which must
/// get 404. One that acts only on the caller's own data, naming no one's id (`false`), is
/// sent anonymously only: there is no one else's data for it to reach.
fn probe(operation: &str, victim: &Victim) -> (Probe, bool) {
    let user = &victim.user_id;
    let foreign = true;
    let own = false;
    match operation {
        "health" => (get("/api/health/".into()), own),
        "task_status" => (get(format!("/task/{}/status", victim.task_id)), foreign),
        "webhook_task_status" => (
            get(format!("/webhook/task-status/{}", victim.task_id)),
            foreign,
        ),
        "shop_skus" => (get("/api/v1/skus".into()), own),
        "order_create" => (
            post(
                "/api/v1/orders".into(),
                json!({"items": [{"sku_id": "pu-erh-cake-357g", "quantity": 1}]}),
            ),
            own,
        ),
        "order_show" => (get(format!("/api/v1/orders/{}", victim.order_id)), foreign),
        "order_pay" => (
            post(format!("/api/v1/orders/{}/pay", victim.order_id), json!({})),
            foreign,
        ),
        "user_registration" => (
            post(
                "/api/v1/user/registration".into(),
                json!({"email": "not an address", "password": "green tea at five"}),
            ),
            own,
        ),
        "user_registration_resend" => (
            post(
                "/api/v1/user/registration/resend".into(),
                json!({"email": "nobody@example.test"}),
            ),
            own,
        ),
        "user_confirm_page" => (get("/api/v1/user/confirm?token=0".into()), own),
        "user_confirm" => (
            post("/api/v1/user/confirm".into(), json!({"token": "0"})),
            own,
        ),
        "user_password_forgot" => (
            post(
                "/api/v1/user/password/forgot".into(),
                json!({"email": "nobody@example.test"}),
            ),
            own,
        ),
        "user_password_reset_page" => (get("/api/v1/user/password/reset?token=0".into()), own),
        "user_password_reset" => (
            post(
                "/api/v1/user/password/reset".into(),
                json!({"token": "0", "password": "a new long password"}),
            ),
            own,
        ),
        "user_login" => (
            post(
                "/api/v1/user/login".into(),
                json!({"email": "nobody@example.test", "password": "not the password"}),
            ),
            own,
        ),
        "user_refresh" => (
            post(
                "/api/v1/user/refresh".into(),
                json!({"refresh_token": "0".repeat(64)}),
            ),
            own,
        ),
        "user_logout" => (post("/api/v1/user/logout".into(), json!({})), own),
        "user_email_change" => (
            post(
                "/api/v1/user/email".into(),
                json!({"new_email": unique_email("access-change")}),
            ),
            own,
        ),
        "user_me" => (get("/api/v1/user/me".into()), own),
        "wellness_chat" => (
            post(
                "/chat".into(),
                json!({"user_id": user, "message": "I cannot sleep at all"}),
            ),
            foreign,
        ),
        "user_topic" => (get(format!("/user/{user}/topic")), foreign),
        "user_recommendations" => (get(format!("/user/{user}/recommendations")), foreign),
        "content_articles" => (get("/content/articles?topic=sleep".into()), own),
        "content_videos" => (get("/content/videos?topic=sleep".into()), own),
        "content_quotes" => (get("/content/quotes?topic=sleep".into()), own),
        "conversation_create" => (
            post(
                "/api/conversations/".into(),
                json!({"content": "Anna: the report is due on Friday."}),
            ),
            own,
        ),
        "conversation_show" => (
            get(format!("/api/conversations/{}/", victim.conversation_id)),
            foreign,
        ),
        "calendar_webhook_setup" => (
            post(
                format!("/webhook/setup/{user}"),
                json!({"calendar_id": "primary"}),
            ),
            foreign,
        ),
        "calendar_webhook_unsubscribe" => (
            delete(format!("/webhook/unsubscribe/{}", victim.channel_id)),
            foreign,
        ),
        "calendar_webhook_status" => (get(format!("/webhook/status/{user}")), foreign),
        "calendar_events" => (get(format!("/calendar/{user}/events")), foreign),
        "calendar_event" => (get(format!("/calendar/{user}/events/tea-tasting")), foreign),
        "calendar_calendars" => (get(format!("/calendar/{user}/calendars")), foreign),
        "calendar_connect" => (get(format!("/calendar/{user}/connect")), foreign),
        // The state names no user: it is checked against the caller's session.
        "calendar_oauth_callback" => (
            get("/oauth/google-calendar/callback?state=s&code=c".into()),
            own,
        ),
        "calendar_disconnect" => (delete(format!("/calendar/{user}/connection")), foreign),
        "google_calendar_webhook" => (post("/webhook/google-calendar".into(), Value::Null), own),
        other => panic!(
            "{other} has no access case: add one to `probe` in tests/tests/access.rs \
             (and to PUBLIC if anyone may call it)"
        ),
    }
}

/// What the document says an operation needs: (operation id, method, route, rule).
fn documented_operations() -> Vec<(String, Method, String, Rule)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/celeriac/openapi.yaml"
    );
    let text = std::fs::read_to_string(path).expect("openapi.yaml");
    let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    let document = serde_json::to_value(yaml).expect("as JSON");
    let mut found = Vec::new();
    for (route, item) in document["paths"].as_object().expect("paths") {
        for (verb, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{verb} {route} has no operationId"))
                .to_owned();
            let rule = match operation.get("security").and_then(Value::as_array) {
                None => Rule::Public,
                Some(requirements) if requirements.iter().any(|r| r == &json!({})) => {
                    Rule::OwnerShown
                }
                Some(_) => Rule::Session,
            };
            let method = Method::from_bytes(verb.to_uppercase().as_bytes()).expect("method");
            found.push((id, method, route.clone(), rule));
        }
    }
    found
}

/// An operation's access rule, as the document states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Public,
    /// Public, but a user's records only to that user (`security: [{}, {session: []}]`).
    OwnerShown,
    Session,
}

async fn send(client: &Client, probe: &Probe, bearer: Option<&str>) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let mut request = http.request(
        probe.method.clone(),
        format!("{}{}", client.base, probe.path),
    );
    if let Some(body) = &probe.body {
        request = request.json(body);
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The victim's data, created through the API as the victim would.
async fn victim(client: &Client, outbox: &Path) -> Victim {
    let token = signed_up(client, outbox, &unique_email("victim")).await;
    let user_id = user_id_of(client, &token).await;
    let order = client
        .post(
            "/api/v1/orders",
            json!({"items": [{"sku_id": "pu-erh-cake-357g", "quantity": 1}]}),
            Some(&token),
        )
        .await;
    assert_eq!(order.status(), StatusCode::CREATED);
    let order_id = json_of(order).await["order"]["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    let conversation = client
        .post(
            "/api/conversations/",
            json!({"content": "Mei: my sleep is bad since the new job."}),
            Some(&token),
        )
        .await;
    assert_eq!(conversation.status(), StatusCode::CREATED);
    let conversation_id = json_of(conversation).await["id"].as_i64().expect("id");
    let chat = client
        .post(
            "/chat",
            json!({"message": "Я чувствую стресс на работе"}),
            Some(&token),
        )
        .await;
    assert_eq!(chat.status(), StatusCode::OK);
    let task_id = json_of(chat).await["task_ids"]["extract_topic_from_message"]
        .as_str()
        .expect("task id")
        .to_owned();
    client.task_finished_as(&task_id, Some(&token)).await;
    let channel = client
        .post(
            &format!("/webhook/setup/{user_id}"),
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(channel.status(), StatusCode::CREATED);
    let channel_id = json_of(channel).await["channel_id"]
        .as_str()
        .expect("channel id")
        .to_owned();
    Victim {
        token,
        user_id,
        order_id,
        conversation_id,
        task_id,
        channel_id,
    }
}

/// What the victim sees of their own data: unchanged after the other user's attempts.
async fn victims_view(client: &Client, victim: &Victim) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("/api/v1/orders/{}", victim.order_id),
        format!("/api/conversations/{}/", victim.conversation_id),
        format!("/user/{}/topic", victim.user_id),
        format!("/task/{}/status", victim.task_id),
        format!("/webhook/status/{}", victim.user_id),
        format!("/calendar/{}/events", victim.user_id),
    ] {
        let response = client.get(&path, Some(&victim.token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        seen.push(json_of(response).await);
    }
    seen
}

#[tokio::test]
async fn every_route_keeps_a_users_data_to_that_users_session() {
    let outbox = outbox_dir("access");
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    let client = Client::new(&server);
    let victim = victim(&client, &outbox).await;
    let other = signed_up(&client, &outbox, &unique_email("other")).await;
    let before = victims_view(&client, &victim).await;

    let public: BTreeSet<&str> = PUBLIC.iter().map(|(id, _)| *id).collect();
    let mut failures = Vec::new();
    for (id, method, route, rule) in documented_operations() {
        let (probe, foreign) = probe(&id, &victim);
        assert_eq!(
            probe.method, method,
            "{id}: the probe's method is the document's"
        );
        let listed_public = public.contains(id.as_str());
        if (rule == Rule::Public) != listed_public {
            failures.push(format!(
                "{id} ({method} {route}): the document says {rule:?}, PUBLIC {} it",
                if listed_public {
                    "lists"
                } else {
                    "does not list"
                }
            ));
            continue;
        }
        let (anonymous, body) = send(&client, &probe, None).await;
        match rule {
            Rule::Public => {
                // A public route may refuse wrong credentials of its own (login, refresh)
                // with 401, never for want of a session.
                let wants_session = body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("log in first"));
                if wants_session || anonymous.is_server_error() {
                    failures.push(format!(
                        "{id}: public, but anonymous got {anonymous}: {body}"
                    ));
                }
            }
            Rule::Session => {
                if anonymous != StatusCode::UNAUTHORIZED {
                    failures.push(format!("{id}: anonymous got {anonymous}, not 401: {body}"));
                }
            }
            Rule::OwnerShown => {
                if anonymous != StatusCode::NOT_FOUND {
                    failures.push(format!(
                        "{id}: anonymous read of the victim's got {anonymous}, not 404: {body}"
                    ));
                }
            }
        }
        if foreign {
            let (status, body) = send(&client, &probe, Some(&other)).await;
            if status != StatusCode::NOT_FOUND {
                failures.push(format!(
                    "{id}: another user's session on the victim's data got {status}, not 404: {body}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        victims_view(&client, &victim).await,
        before,
        "the victim's data is as it was"
    );
}
