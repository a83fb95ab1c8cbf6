//! The calendar as a new user tries it through `celeriac dev` with the fixture provider:
//! set up a channel, change an event in the fixture calendar, post the notification Google
//! would send, and read the changed event; on embedded defaults, and on Redis and
//! PostgreSQL.

use std::time::Duration;

use celeriac_testkit::{DevServer, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Waits until the task's state is final; returns its status document.
async fn finished(http: &reqwest::Client, base: &str, task_id: &str) -> Value {
    for _ in 0..300 {
        let response = http
            .get(format!("{base}/webhook/task-status/{task_id}"))
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

async fn set_up_notify_and_read(server: &DevServer) {
    let http = reqwest::Client::new();
    let base = &server.url;
    let user = celeriac_testkit::unique_prefix("mei").replace([':', '{', '}'], "-");

    let setup = http
        .post(format!("{base}/webhook/setup/{user}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(setup.status(), StatusCode::CREATED);
    let setup = json_of(setup).await;
    let channel_id = setup["channel_id"].as_str().expect("channel id").to_owned();
    let initial = setup["initial_sync_task_id"].as_str().expect("sync task");
    let initial = finished(&http, base, initial).await;
    assert_eq!(initial["state"], "SUCCESS", "{initial}");

    let events = json_of(
        http.get(format!("{base}/calendar/{user}/events"))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    let ids: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["tea-tasting", "weekly-review", "garden-day"]);
    let before = http
        .get(format!("{base}/calendar/{user}/events/tea-tasting"))
        .send()
        .await
        .expect("GET");
    assert_eq!(before.status(), StatusCode::OK);
    assert_eq!(json_of(before).await["event"]["summary"], "Tea tasting");

    // What a user does in Google Calendar; the fixture hands back Google's notification.
    let changed = http
        .put(format!(
            "{base}/_celeriac/calendar/{user}/events/tea-tasting"
        ))
        .json(&json!({"summary": "Tea tasting in the garden"}))
        .send()
        .await
        .expect("PUT");
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
    let synced = finished(&http, base, accepted["task_id"].as_str().expect("task")).await;
    assert_eq!(synced["state"], "SUCCESS", "{synced}");
    assert_eq!(synced["result"]["upserted"], 1, "{synced}");

    let after = json_of(
        http.get(format!("{base}/calendar/{user}/events/tea-tasting"))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(after["event"]["summary"], "Tea tasting in the garden");
    let status = json_of(
        http.get(format!("{base}/webhook/status/{user}"))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(status["channels"][0]["last_message_number"], 2);

    let gone = http
        .delete(format!("{base}/webhook/unsubscribe/{channel_id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(gone.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_channel_a_notification_and_the_changed_event_on_embedded_defaults() {
    let server = DevServer::start(&[]);
    set_up_notify_and_read(&server).await;
}

#[tokio::test]
async fn a_channel_a_notification_and_the_changed_event_on_redis_and_postgres() {
    let (Some(redis), Some(database)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    let server = DevServer::start(&[("REDIS_URL", redis), ("DATABASE_URL", database)]);
    set_up_notify_and_read(&server).await;
}
