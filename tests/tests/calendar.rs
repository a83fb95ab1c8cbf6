//! The calendar as a new user tries it through `celeriac dev` with the fixture provider:
//! sign up and log in, set up a channel, change an event in the fixture calendar, post the
//! notification Google would send, and read the changed event; on embedded defaults, and
//! on Redis and PostgreSQL. Every calendar route refuses an anonymous caller (401) and
//! another user's session (404, nothing changed).

mod support;

use std::path::Path;
use std::time::Duration;

use celeriac_testkit::{DevServer, free_port, standin};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Client, signed_up, unique_email};
async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Waits until the task's state is final; returns its status document.
async fn finished(http: &reqwest::Client, base: &str, task_id: &str, bearer: &str) -> Value {
    for _ in 0..300 {
        let response = http
            .get(format!("{base}/webhook/task-status/{task_id}"))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("GET");
        if response.status() == StatusCode::OK {
            let status = json_of(response).await;
            if matches!(
                status["state"].as_str(),
                Some("SUCCESS" | "FAILURE" | "REVOKED")
            ) {
                return status;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} did not finish");
}

/// `method path` with `bearer` (none: anonymous), with `body` as JSON if given.
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = http.request(method, format!("{base}{path}"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

/// The session's user id.
async fn user_id(client: &Client, token: &str) -> String {
    let me = json_of(client.get("/api/v1/user/me", Some(token)).await).await;
    me["user"]["id"].as_str().expect("user id").to_owned()
}

async fn set_up_notify_and_read(server: &DevServer, outbox: &Path) {
    let client = Client::new(server);
    // The consent redirect is checked, not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = &server.url;
    let mei_token = signed_up(&client, outbox, &unique_email("mei")).await;
    let kai_token = signed_up(&client, outbox, &unique_email("kai")).await;
    let (mei, kai) = (
        user_id(&client, &mei_token).await,
        user_id(&client, &kai_token).await,
    );
    let mei_bearer = Some(mei_token.as_str());
    let kai_bearer = Some(kai_token.as_str());
    let user = mei.as_str();

    let setup = send(
        &http,
        base,
        Method::POST,
        &format!("/webhook/setup/{user}"),
        mei_bearer,
        None,
    )
    .await;
    assert_eq!(setup.status(), StatusCode::CREATED);
    let setup = json_of(setup).await;
    let channel_id = setup["channel_id"].as_str().expect("channel id").to_owned();
    let initial = setup["initial_sync_task_id"].as_str().expect("sync task");
    let initial_task = initial.to_owned();
    let initial = finished(&http, base, initial, &mei_token).await;
    assert_eq!(initial["state"], "SUCCESS", "{initial}");

    // Every calendar route: anonymous 401; Kai's session on Mei's ids 404.
    let mei_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/webhook/setup/{user}"), None),
        (
            Method::DELETE,
            format!("/webhook/unsubscribe/{channel_id}"),
            None,
        ),
        (Method::GET, format!("/webhook/status/{user}"), None),
        (Method::GET, format!("/calendar/{user}/events"), None),
        (
            Method::GET,
            format!("/calendar/{user}/events/tea-tasting"),
            None,
        ),
        (Method::GET, format!("/calendar/{user}/calendars"), None),
        (Method::GET, format!("/calendar/{user}/connect"), None),
        (Method::DELETE, format!("/calendar/{user}/connection"), None),
        (
            Method::PUT,
            format!("/_celeriac/calendar/{user}/events/tea-tasting"),
            Some(json!({"summary": "Kai was here"})),
        ),
        (
            Method::DELETE,
            format!("/_celeriac/calendar/{user}/events/tea-tasting"),
            None,
        ),
    ];
    for (method, path, body) in &mei_routes {
        let anonymous = send(&http, base, method.clone(), path, None, body.clone()).await;
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let stranger = send(&http, base, method.clone(), path, kai_bearer, body.clone()).await;
        assert_eq!(stranger.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let error = json_of(stranger).await;
        assert_eq!(error["error"]["code"], "not_found", "{method} {path}");
    }
    let callback = "/oauth/google-calendar/callback?state=abc&code=def";
    assert_eq!(
        send(&http, base, Method::GET, callback, None, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Kai cannot watch one of Mei's calendars through his own id either.
    let mei_calendars = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/calendar/{user}/calendars"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    let mei_second = mei_calendars["calendars"][1]["id"]
        .as_str()
        .expect("second calendar")
        .to_owned();
    let borrowed = send(
        &http,
        base,
        Method::POST,
        &format!("/webhook/setup/{kai}"),
        kai_bearer,
        Some(json!({"calendar_id": mei_second})),
    )
    .await;
    assert_eq!(borrowed.status(), StatusCode::NOT_FOUND);
    // Nothing of Mei's changed: her channel is there, unstopped, and Kai has none.
    let status = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/webhook/status/{user}"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status["channels"][0]["channel_id"], channel_id.as_str());
    let kai_status = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/webhook/status/{kai}"),
            kai_bearer,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(kai_status["channels"], json!([]));

    let events = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/calendar/{user}/events"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    let ids: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["tea-tasting", "weekly-review", "garden-day"]);
    let before = send(
        &http,
        base,
        Method::GET,
        &format!("/calendar/{user}/events/tea-tasting"),
        mei_bearer,
        None,
    )
    .await;
    assert_eq!(before.status(), StatusCode::OK);
    assert_eq!(json_of(before).await["event"]["summary"], "Tea tasting");

    // What a user does in Google Calendar; the fixture hands back Google's notification.
    let changed = send(
        &http,
        base,
        Method::PUT,
        &format!("/_celeriac/calendar/{user}/events/tea-tasting"),
        mei_bearer,
        Some(json!({"summary": "Tea tasting in the garden"})),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed = json_of(changed).await;
    let notification = changed["notifications"][0]
        .as_object()
        .expect("one")
        .clone();
    assert_eq!(notification["X-Goog-Channel-ID"], channel_id.as_str());
    let post = |headers: serde_json::Map<String, Value>| {
        let mut request = http.post(format!("{base}/webhook/google-calendar"));
        for (name, value) in &headers {
            request = request.header(name, value.as_str().expect("header value"));
        }
        request.send()
    };

    let mut forged = notification.clone();
    forged.insert("X-Goog-Channel-Token".into(), json!("guessed"));
    assert_eq!(
        post(forged).await.expect("POST").status(),
        StatusCode::FORBIDDEN
    );

    let accepted = post(notification.clone()).await.expect("POST");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted = json_of(accepted).await;
    let duplicate = post(notification).await.expect("POST");
    assert_eq!(duplicate.status(), StatusCode::ACCEPTED);
    let sync_task = accepted["task_id"].as_str().expect("task");
    let synced = finished(&http, base, sync_task, &mei_token).await;
    assert_eq!(synced["state"], "SUCCESS", "{synced}");
    // The syncs are Mei's: Kai and anonymous callers cannot read their state.
    for task in [initial_task.as_str(), sync_task] {
        for bearer in [kai_bearer, None] {
            let status = send(
                &http,
                base,
                Method::GET,
                &format!("/webhook/task-status/{task}"),
                bearer,
                None,
            )
            .await;
            assert_eq!(status.status(), StatusCode::NOT_FOUND, "{task}");
        }
    }
    assert_eq!(synced["result"]["upserted"], 1, "{synced}");

    let after = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/calendar/{user}/events/tea-tasting"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(after["event"]["summary"], "Tea tasting in the garden");
    let status = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/webhook/status/{user}"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status["channels"][0]["last_message_number"], 2);

    let gone = send(
        &http,
        base,
        Method::DELETE,
        &format!("/webhook/unsubscribe/{channel_id}"),
        mei_bearer,
        None,
    )
    .await;
    assert_eq!(gone.status(), StatusCode::OK);
    // The fixture has nothing to connect; disconnecting forgets Mei's synced copy.
    let connect = send(
        &http,
        base,
        Method::GET,
        &format!("/calendar/{user}/connect"),
        mei_bearer,
        None,
    )
    .await;
    assert_eq!(connect.status(), StatusCode::CONFLICT);
    let disconnected = send(
        &http,
        base,
        Method::DELETE,
        &format!("/calendar/{user}/connection"),
        mei_bearer,
        None,
    )
    .await;
    assert_eq!(disconnected.status(), StatusCode::OK);
    let emptied = json_of(
        send(
            &http,
            base,
            Method::GET,
            &format!("/calendar/{user}/events"),
            mei_bearer,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(emptied["events"], json!([]));
}

fn outbox() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("celeriac-calendar-outbox-{}", free_port()))
}

#[tokio::test]
async fn a_channel_a_notification_and_the_changed_event_on_embedded_defaults() {
    let outbox = outbox();
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    set_up_notify_and_read(&server, &outbox).await;
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn a_channel_a_notification_and_the_changed_event_on_redis_and_postgres() {
    let (Some(redis), Some(database)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    let outbox = outbox();
    let server = DevServer::start(&[
        ("REDIS_URL", redis),
        ("DATABASE_URL", database),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
    ]);
    set_up_notify_and_read(&server, &outbox).await;
    let _ = std::fs::remove_dir_all(&outbox);
}
