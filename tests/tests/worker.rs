//! `celeriac worker` on Redis Streams, as an operator runs it: tasks enqueued straight to
//! Redis by `celeriac call` run, SIGTERM stops the worker cleanly, and after its Redis
//! comes back empty it goes on by itself while its health shows the outage.

use std::process::{Command, Stdio};
use std::time::Duration;

use celeriac_testkit::{OwnRedis, free_port, standin, workspace_binary};
use serde_json::Value;

fn celeriac(args: &[&str], redis: &str) -> std::process::Output {
    Command::new(workspace_binary("celeriac"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", redis)
        .output()
        .expect("run celeriac")
}

#[test]
fn a_worker_runs_tasks_sent_straight_to_redis_and_stops_on_sigterm() {
    let Some(redis) = standin("CELERIAC_TEST_REDIS_URL") else {
        return;
    };
    let log = std::env::temp_dir().join(format!("celeriac-worker-{}.log", std::process::id()));
    let mut worker = Command::new(workspace_binary("celeriac"))
        .args(["worker", "--queues", "main-queue", "--concurrency", "4"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", &redis)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start worker");

    let mut ids = Vec::new();
    for word in ["one", "two", "three"] {
        let out = celeriac(
            &[
                "call",
                "test_celery",
                "--args",
                &format!(r#"{{"word": "{word}"}}"#),
            ],
            &redis,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push((word, String::from_utf8_lossy(&out.stdout).trim().to_owned()));
    }
    for (word, id) in &ids {
        let out = celeriac(&["result", id, "--wait", "15"], &redis);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            printed.trim(),
            format!("SUCCESS\nresult: \"test task return {word}\""),
            "worker log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    let pid = worker.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut stopped = None;
    for _ in 0..100 {
        if let Some(status) = worker.try_wait().expect("wait") {
            stopped = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = stopped.unwrap_or_else(|| {
        let _ = worker.kill();
        panic!("the worker did not stop within 10 s of SIGTERM");
    });
    assert!(status.success(), "clean exit after SIGTERM, got {status}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("worker stopped")
    );
}

/// The worker's `GET /api/health/` at `url`, until `done` holds (30 s at most).
async fn worker_health_until(url: &str, what: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(url).await {
            let status = response.status().as_u16();
            last = response.json().await.unwrap_or_default();
            if done(status, &last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker's health never showed {what}; last answer {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_redis_restarts_empty_a_worker_goes_on_and_its_health_says_so_meanwhile() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-worker-volatile-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut redis = OwnRedis::start_volatile(&bin, free_port(), &dir);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let health_addr = format!("127.0.0.1:{}", free_port());
    let health = format!("http://{health_addr}/api/health/");
    let log = dir.join("worker.log");
    let mut worker = Command::new(workspace_binary("celeriac"))
        .args([
            "worker",
            "--queues",
            "main-queue",
            "--health-addr",
            &health_addr,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", &url)
        .env("REDIS_TIMEOUT_MS", "300")
        .env("REDIS_CONNECT_TIMEOUT_MS", "300")
        .env("HEALTH_INTERVAL_MS", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start worker");
    worker_health_until(&health, "ok", |status, _| status == 200).await;

    redis.kill();
    let down = worker_health_until(&health, "the pollers failing", |status, body| {
        status == 503 && body["components"]["worker"]["status"] == "error"
    })
    .await;
    assert_eq!(down["components"]["redis"]["status"], "error", "{down}");
    assert!(!down.to_string().contains("os error"), "{down}");

    let _restarted = OwnRedis::start_volatile(&bin, redis.port, &dir);
    worker_health_until(&health, "ok again", |status, _| status == 200).await;
    let out = celeriac(
        &["call", "test_celery", "--args", r#"{"word": "after"}"#],
        &url,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = celeriac(&["result", &id, "--wait", "15"], &url);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = worker.kill();
    let _ = worker.wait();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        printed.trim(),
        "SUCCESS\nresult: \"test task return after\"",
        "worker log:\n{logged}"
    );
    assert!(logged.contains("creating it again"), "{logged}");
    let _ = std::fs::remove_dir_all(&dir);
}
