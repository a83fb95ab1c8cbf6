//! Tasks end to end through `celeriac dev`, as a user drives them: `celeriac call`,
//! `celeriac result`, `GET /task/{id}/status`, revoke, and the same with task state in
//! the Redis stand-in.

use std::process::{Command, Output};

use celeriac_testkit::{DevServer, standin, workspace_binary};

fn celeriac(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(workspace_binary("celeriac"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run celeriac")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "celeriac failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn call_then_result_shows_success_via_cli_and_status_endpoint() {
    let server = DevServer::start(&[]);
    let url = server.url.as_str();
    let id = stdout(&celeriac(
        &["call", "test_celery", "--args", r#"{"word": "ping"}"#],
        &[("CELERIAC_URL", url)],
    ));
    assert_eq!(id.len(), 36, "a UUID task id, got {id:?}");

    let printed = stdout(&celeriac(
        &["result", &id, "--wait", "10"],
        &[("CELERIAC_URL", url)],
    ));
    assert_eq!(printed, "SUCCESS\nresult: \"test task return ping\"");

    let status: serde_json::Value = reqwest::get(format!("{url}/task/{id}/status"))
        .await
        .expect("GET status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["state"], "SUCCESS");
    assert_eq!(status["queue"], "main-queue");
    assert_eq!(status["result"], "test task return ping");
    let webhook: serde_json::Value = reqwest::get(format!("{url}/webhook/task-status/{id}"))
        .await
        .expect("GET webhook status")
        .json()
        .await
        .expect("json");
    assert_eq!(webhook["state"], "SUCCESS");
}

#[tokio::test]
async fn bad_calls_are_refused_with_a_reason() {
    let server = DevServer::start(&[]);
    let env = [("CELERIAC_URL", server.url.as_str())];
    let out = celeriac(&["call", "no_such_task"], &env);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no task named \"no_such_task\"") && stderr.contains("test_celery"),
        "{stderr}"
    );

    let out = celeriac(&["call", "test_celery", "--args", "{not json"], &env);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args must be JSON"));

    let response = reqwest::Client::new()
        .post(format!("{}/_celeriac/tasks", server.url))
        .json(&serde_json::json!({"task": "test_celery", "priority": 12}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);

    let unknown = reqwest::get(format!(
        "{}/task/5d1c9a77-0000-4000-8000-000000000000/status",
        server.url
    ))
    .await
    .expect("GET");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_task_revoked_before_its_countdown_never_runs() {
    let server = DevServer::start(&[]);
    let env = [("CELERIAC_URL", server.url.as_str())];
    let id = stdout(&celeriac(
        &[
            "call",
            "test_celery",
            "--args",
            r#"{"word": "late"}"#,
            "--countdown",
            "1",
        ],
        &env,
    ));
    let response = reqwest::Client::new()
        .post(format!("{}/_celeriac/tasks/{id}/revoke", server.url))
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 200);
    // Once the worker reaches it, past its countdown, it is skipped: still REVOKED, with
    // no result.
    assert!(
        server
            .logs_within(
                "revoked before it started",
                std::time::Duration::from_secs(10)
            )
            .await,
        "{}",
        server.log()
    );
    let printed = stdout(&celeriac(&["result", &id], &env));
    assert_eq!(printed.lines().next(), Some("REVOKED"), "{printed}");
    assert!(!printed.contains("test task return"), "{printed}");
}

#[tokio::test]
async fn a_task_run_is_a_cloudwatch_metric_in_embedded_metric_format() {
    let server = DevServer::start(&[("CELERIAC_METRICS", "emf".to_owned())]);
    let env = [("CELERIAC_URL", server.url.as_str())];
    let id = stdout(&celeriac(
        &["call", "test_celery", "--args", r#"{"word": "metric"}"#],
        &env,
    ));
    let printed = stdout(&celeriac(&["result", &id, "--wait", "10"], &env));
    assert_eq!(printed.lines().next(), Some("SUCCESS"), "{printed}");
    let needle = r#""Task":"test_celery""#;
    assert!(
        server
            .logs_within(needle, std::time::Duration::from_secs(10))
            .await,
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log.lines().find(|l| l.contains(needle)).expect("the line");
    let document: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "celeriac");
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([["Service", "Task"]])
    );
    assert_eq!(document["Succeeded"], 1.0);
    assert!(
        document["Duration"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
}

#[tokio::test]
async fn with_redis_the_state_is_read_straight_from_redis() {
    let Some(redis) = standin("CELERIAC_TEST_REDIS_URL") else {
        return;
    };
    let server = DevServer::start(&[("REDIS_URL", redis.clone())]);
    let id = stdout(&celeriac(
        &["call", "test_celery", "--args", r#"{"word": "redis"}"#],
        &[("CELERIAC_URL", server.url.as_str())],
    ));
    // No CELERIAC_URL: `celeriac result` reads the record where the worker wrote it.
    let printed = stdout(&celeriac(
        &["result", &id, "--wait", "10"],
        &[("REDIS_URL", redis.as_str())],
    ));
    assert_eq!(printed, "SUCCESS\nresult: \"test task return redis\"");
}

#[tokio::test]
async fn with_task_transport_redis_dev_runs_tasks_over_redis_streams() {
    let Some(redis) = standin("CELERIAC_TEST_REDIS_URL") else {
        return;
    };
    let server = DevServer::start(&[
        ("REDIS_URL", redis.clone()),
        ("TASK_TRANSPORT", "redis".into()),
    ]);
    let id = stdout(&celeriac(
        &["call", "test_celery", "--args", r#"{"word": "stream"}"#],
        &[("CELERIAC_URL", server.url.as_str())],
    ));
    let printed = stdout(&celeriac(
        &["result", &id, "--wait", "10"],
        &[("CELERIAC_URL", server.url.as_str())],
    ));
    assert_eq!(printed, "SUCCESS\nresult: \"test task return stream\"");
    assert!(
        server.log().contains("transport=\"redis-streams\""),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn celeriac_call_sends_straight_to_sqs_with_the_state_in_redis() {
    let (Some(redis), Some(moto), Some(sdk)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_MOTO_URL"),
        celeriac_testkit::moto_sdk().await,
    ) else {
        return;
    };
    let prefix = format!("call{}-", std::process::id());
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}main-queue"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url");
    let env = [
        ("TASK_TRANSPORT", "sqs"),
        ("TASK_QUEUE_URL", url.as_str()),
        ("TASK_QUEUE_PREFIX", prefix.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("REDIS_URL", redis.as_str()),
    ];
    let id = stdout(&celeriac(
        &["call", "test_celery", "--args", r#"{"word": "sqs"}"#],
        &env,
    ));
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let envelope: serde_json::Value =
        serde_json::from_str(received[0].body.as_deref().unwrap_or_default()).expect("an envelope");
    assert_eq!(envelope["id"], id.as_str());
    assert_eq!(envelope["task"], "test_celery");
    assert_eq!(envelope["args"]["word"], "sqs");
    // Nothing runs it here: its record says PENDING.
    let printed = stdout(&celeriac(
        &["result", &id],
        &[("REDIS_URL", redis.as_str())],
    ));
    assert_eq!(printed, "PENDING");
}
