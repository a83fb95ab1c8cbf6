//! Faults a worker must survive without losing or repeating work, with real processes and
//! a real redis-server: a worker killed with SIGKILL mid-task, Redis restarted under load,
//! and Redis restarted empty (no persistence) under `celeriac dev`'s worker.

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{RedisKv, SharedKv};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_tasks::{RedisStreams, SendOptions, TaskClient, TaskSpec, TaskState, TaskStore};
use celeriac_testkit::{DevServer, OwnRedis, free_port, standin, workspace_binary};
use serde_json::{Value, json};
use support::Client;

fn config(url: &str) -> RedisConfig {
    RedisConfig {
        topology: RedisTopology::Single(url.to_owned().into()),
        ca_file: None,
        response_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
    }
}

fn start_worker(url: &str, queue: &str, log: &str) -> Child {
    Command::new(workspace_binary("fault_worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", url)
        .env("VISIBILITY_MS", "1000")
        .env("FAULT_QUEUE", queue)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(std::env::temp_dir().join(log)).expect("log"))
        .spawn()
        .expect("start fault_worker")
}

async fn client(url: &str) -> (TaskClient, SharedKv) {
    let kv = Arc::new(RedisKv::open(&config(url)).await.expect("redis"));
    let streams = Arc::new(RedisStreams::new(
        kv.clone(),
        config(url),
        "test-producer",
        Duration::from_secs(1),
    ));
    (
        TaskClient::new(streams, TaskStore::new(kv.clone()), "faults test"),
        kv,
    )
}

async fn wait_for(store: &TaskStore, id: &str, state: TaskState, seconds: u64) -> bool {
    for _ in 0..seconds * 20 {
        if store
            .get(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.status == state)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_worker_is_killed_is_redelivered_and_completed_once() {
    let Some(url) = standin("CELERIAC_TEST_REDIS_URL") else {
        return;
    };
    let (client, kv) = client(&url).await;
    let counter = format!("faults:effects:{}", std::process::id());
    let spec = TaskSpec::new("sleepy").queue("faults");
    let mut first = start_worker(&url, "faults-kill", "fault-worker-1.log");
    let id = client
        .send(
            &spec,
            serde_json::json!({"ms": 1500, "counter": counter}),
            queue_opts("faults-kill"),
        )
        .await
        .expect("send");
    assert!(
        wait_for(client.store(), &id, TaskState::Started, 10).await,
        "the first worker started it"
    );
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");

    let mut second = start_worker(&url, "faults-kill", "fault-worker-2.log");
    let done = wait_for(client.store(), &id, TaskState::Success, 20).await;
    second.kill().expect("stop");
    second.wait().expect("reaped");
    assert!(done, "the second worker completed the abandoned task");
    let effects = kv.get(&counter).await.expect("get").expect("counter");
    assert_eq!(effects, b"1", "the effect happened once");
    let record = client.store().get(&id).await.expect("get").expect("record");
    assert!(
        record.retries >= 1,
        "the redelivery counts as a later attempt: {record:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_under_load_the_worker_resumes_by_itself() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-faults-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = OwnRedis::start(&bin, port, &dir);
    let (client, kv) = client(&url).await;
    let counter = "faults:restart-effects";
    let spec = TaskSpec::new("sleepy").queue("faults");
    let mut worker = start_worker(&url, "faults-restart", "fault-worker-restart.log");

    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            client
                .send(
                    &spec,
                    serde_json::json!({"ms": 50, "counter": counter}),
                    queue_opts("faults-restart"),
                )
                .await
                .expect("send"),
        );
    }
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = OwnRedis::start(&bin, redis.port, &redis.dir);
    for _ in 0..20 {
        // The producer's connection also reconnects by itself; a send may fail once while it does.
        for attempt in 0..20 {
            match client
                .send(
                    &spec,
                    serde_json::json!({"ms": 50, "counter": counter}),
                    queue_opts("faults-restart"),
                )
                .await
            {
                Ok(id) => {
                    ids.push(id);
                    break;
                }
                Err(e) if attempt < 19 => {
                    assert!(e.is_retryable(), "{e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("redis never came back for the producer: {e}"),
            }
        }
    }
    let mut all = true;
    for id in &ids {
        all &= wait_for(client.store(), id, TaskState::Success, 30).await;
    }
    let effects: i64 = String::from_utf8(kv.get(counter).await.ok().flatten().unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    worker.kill().expect("stop");
    worker.wait().expect("reaped");
    drop(restarted);
    let log = std::fs::read_to_string(std::env::temp_dir().join("fault-worker-restart.log"))
        .unwrap_or_default();
    assert!(
        all,
        "every task, before and after the restart, reached SUCCESS; worker log:\n{log}"
    );
    // Nothing lost: every task's effect is counted (at least once; a task whose success was
    // not yet recorded when Redis died may run again).
    assert!(effects >= 40, "effects counted: {effects}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_longer_than_the_visibility_timeout_runs_once_across_workers() {
    let Some(url) = standin("CELERIAC_TEST_REDIS_URL") else {
        return;
    };
    let (client, kv) = client(&url).await;
    let counter = format!("faults:long-effects:{}", std::process::id());
    let spec = TaskSpec::new("sleepy").queue("faults");
    // Two live workers with a 1 s visibility timeout; the task takes 3.5 s, so the other
    // worker reclaims its delivery several times while it runs.
    let mut first = start_worker(&url, "faults-long", "fault-worker-long-1.log");
    let mut second = start_worker(&url, "faults-long", "fault-worker-long-2.log");
    let id = client
        .send(
            &spec,
            serde_json::json!({"ms": 3500, "counter": counter}),
            queue_opts("faults-long"),
        )
        .await
        .expect("send");
    let done = wait_for(client.store(), &id, TaskState::Success, 20).await;
    // Leave time for any duplicate that would still run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for w in [&mut first, &mut second] {
        w.kill().expect("stop");
        w.wait().expect("reaped");
    }
    assert!(done, "the long task succeeded");
    let effects = kv.get(&counter).await.expect("get").expect("counter");
    assert_eq!(
        effects, b"1",
        "a live task's reclaimed copies were deferred, not run"
    );
}

/// `GET /api/health/`'s status and body.
async fn health(client: &Client) -> (u16, Value) {
    let response = client.get("/api/health/", None).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Asks health until `done` holds for its answer (30 s at most); the last answer.
async fn health_until(
    client: &Client,
    server: &DevServer,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..300 {
        last = health(client).await;
        if done(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "health never showed {what}; last answer {} {}\n{}",
        last.0,
        last.1,
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_the_worker_resumes_and_health_shows_the_outage() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-faults-volatile-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut redis = OwnRedis::start_volatile(&bin, free_port(), &dir);
    let server = DevServer::start(&[
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
        ("TASK_TRANSPORT", "redis".into()),
        ("REDIS_TIMEOUT_MS", "300".into()),
        ("REDIS_CONNECT_TIMEOUT_MS", "300".into()),
        // Every answer probes again, so it shows the moment the test looks at.
        ("HEALTH_INTERVAL_MS", "0".into()),
    ]);
    let client = Client::new(&server);
    let word = |n: usize| json!({ "word": format!("w{n}") });
    for n in 0..5 {
        let id = client.call_task("test_celery", Some(word(n))).await;
        assert_eq!(client.task_finished(&id).await["state"], "SUCCESS");
    }

    // Load: tasks keep coming while Redis dies and comes back; what was queued or running
    // at the wipe is lost with it (no persistence), and sends fail while it is down.
    let load = {
        let base = client.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0.. {
                let _ = http
                    .post(format!("{base}/_celeriac/tasks"))
                    .json(&json!({"task": "test_celery", "args": {"word": format!("load{n}")}}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    redis.kill();
    let (status, body) = health_until(&client, &server, "the worker failing", |_, body| {
        body["components"]["worker"]["status"] == "error"
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["components"]["redis"]["status"], "error", "{body}");
    let kind = body["components"]["worker"]["error"].as_str().unwrap_or("");
    assert!(
        ["refused", "timeout", "unavailable"].contains(&kind),
        "{body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("os error"),
        "no raw error text: {text}"
    );

    // Back, empty: the consumer groups are gone and producers' XADDs recreate the streams
    // without them. The same process must find its way back.
    let restarted = OwnRedis::start_volatile(&bin, redis.port, &dir);
    let (_, body) = health_until(&client, &server, "every component ok", |status, _| {
        status == 200
    })
    .await;
    assert_eq!(body["components"]["worker"]["status"], "ok", "{body}");
    load.abort();
    let mut ids = Vec::new();
    for n in 100..110 {
        ids.push(client.call_task("test_celery", Some(word(n))).await);
    }
    for (n, id) in (100..110).zip(&ids) {
        let status = client.task_finished(id).await;
        assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());
        assert_eq!(status["result"], format!("test task return w{n}"));
    }
    assert!(
        server.log().contains("creating it again"),
        "the worker recreated its consumer group:\n{}",
        server.log()
    );
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each test on its own queue, so concurrent tests' workers never take each other's tasks.
fn queue_opts(queue: &str) -> SendOptions {
    SendOptions {
        queue: Some(queue.to_owned()),
        ..SendOptions::default()
    }
}
