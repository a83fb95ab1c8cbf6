//! Faults a worker must survive without losing or repeating work, with real processes and
//! a real redis-server: a worker killed with SIGKILL mid-task, and Redis restarted under
//! load.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{RedisKv, SharedKv};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_tasks::{RedisStreams, SendOptions, TaskClient, TaskSpec, TaskState, TaskStore};
use celeriac_testkit::{OwnRedis, free_port, standin, workspace_binary};

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

/// Each test on its own queue, so concurrent tests' workers never take each other's tasks.
fn queue_opts(queue: &str) -> SendOptions {
    SendOptions {
        queue: Some(queue.to_owned()),
        ..SendOptions::default()
    }
}
