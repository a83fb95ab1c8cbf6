//! The runner and worker over the in-process transport and the memory store: states,
//! retries, dead letters, revocation, expiry and duplicate deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_tasks::backoff::Backoff;
use celeriac_tasks::{
    InProcess, Outcome, Registry, Runner, SendOptions, Task, TaskClient, TaskContext, TaskError,
    TaskSpec, TaskState, TaskStore, Transport, Worker,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Word {
    word: String,
}

/// Fails `fail_first` times (retryably), then succeeds; counts its effects.
struct Flaky {
    fail_first: u32,
    calls: Arc<AtomicU32>,
}

#[async_trait]
impl Task for Flaky {
    type Args = Word;
    type Output = String;
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("flaky")
            .queue("q")
            .result_ttl(Duration::from_secs(60))
            .backoff(Backoff {
                base: Duration::from_millis(20),
                cap: Duration::from_millis(50),
                jitter: false,
            })
    }
    async fn run(&self, args: Word, _ctx: &TaskContext) -> Result<String, TaskError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail_first {
            return Err(TaskError::Retryable(format!("attempt {n} failed")));
        }
        Ok(format!("done {}", args.word))
    }
}

struct Fixture {
    kv: SharedKv,
    transport: Arc<InProcess>,
    client: TaskClient,
    runner: Runner,
    calls: Arc<AtomicU32>,
}

impl Fixture {
    /// Enqueues the `flaky` task with default options; returns its id.
    async fn send(&self, args: serde_json::Value) -> String {
        self.client
            .send(&spec(), args, SendOptions::default())
            .await
            .expect("send")
    }
}

fn fixture(fail_first: u32) -> Fixture {
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let calls = Arc::new(AtomicU32::new(0));
    let registry = Arc::new(Registry::new().register(Flaky {
        fail_first,
        calls: calls.clone(),
    }));
    let transport = Arc::new(InProcess::new(Duration::from_secs(30)));
    let client = TaskClient::new(transport.clone(), TaskStore::new(kv.clone()), "test");
    let runner = Runner::new(registry, kv.clone());
    Fixture {
        kv,
        transport,
        client,
        runner,
        calls,
    }
}

fn spec() -> TaskSpec {
    Flaky {
        fail_first: 0,
        calls: Arc::default(),
    }
    .spec()
}

async fn run_worker_until_final(f: &Fixture, id: &str) -> celeriac_tasks::TaskRecord {
    let worker = Worker::new(f.transport.clone(), f.runner.clone(), vec!["q".into()], 4);
    let store = TaskStore::new(f.kv.clone());
    let id = id.to_owned();
    let wait_final = async move {
        for _ in 0..500 {
            if let Some(r) = store.get(&id).await.expect("get")
                && r.status.is_final()
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task never reached a final state");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(worker.run(async {
        let _ = rx.await;
    }));
    let record = wait_final.await;
    let _ = tx.send(());
    handle.await.expect("worker stops");
    record
}

#[tokio::test]
async fn pending_then_success_with_the_result() {
    let f = fixture(0);
    let id = f.send(serde_json::json!({"word": "ping"})).await;
    let pending = f
        .client
        .store()
        .get(&id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(pending.status, TaskState::Pending);
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Success);
    assert_eq!(record.result, Some(serde_json::json!("done ping")));
    assert!(record.started_at.is_some() && record.date_done.is_some());
    let kept =
        f.kv.ttl(&format!("celery-task-meta-{id}"))
            .await
            .expect("ttl")
            .expect("the record expires");
    assert!(
        kept <= Duration::from_secs(60),
        "the task's result_ttl applies to its final record: {kept:?}"
    );
}

#[tokio::test]
async fn tasks_sharing_an_idempotency_key_have_one_effect() {
    let f = fixture(0);
    let options = || SendOptions {
        idempotency_key: Some("order-42-confirmation".into()),
        ..SendOptions::default()
    };
    let first = f
        .client
        .send(&spec(), serde_json::json!({"word": "a"}), options())
        .await
        .expect("send");
    let one = run_worker_until_final(&f, &first).await;
    let second = f
        .client
        .send(&spec(), serde_json::json!({"word": "b"}), options())
        .await
        .expect("send");
    let two = run_worker_until_final(&f, &second).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 1, "one effect for one key");
    assert_eq!(one.status, TaskState::Success);
    assert_eq!(two.status, TaskState::Success);
    assert_eq!(
        two.result, one.result,
        "the second reports the first's result"
    );
}

#[tokio::test]
async fn retryable_failures_retry_then_succeed() {
    let f = fixture(2);
    let id = f.send(serde_json::json!({"word": "x"})).await;
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Success);
    assert_eq!(record.retries, 2);
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn after_the_last_retry_it_fails_and_is_dead_lettered() {
    let f = fixture(100);
    let id = f.send(serde_json::json!({"word": "x"})).await;
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Failure);
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        4,
        "one attempt and three retries"
    );
    assert_eq!(record.error.as_deref(), Some("attempt 4 failed"));
    let dead = f.transport.dead_letters("q");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "attempt 4 failed");
}

#[tokio::test]
async fn bad_arguments_fail_at_once_without_retries() {
    let f = fixture(0);
    let id = f.send(serde_json::json!({"nope": 1})).await;
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Failure);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("invalid arguments for flaky")),
        "{record:?}"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_garbage_message_goes_to_the_dead_letters_alone() {
    let f = fixture(0);
    assert!(matches!(
        f.runner.execute(b"{not json", 1, None).await,
        Outcome::Dead(_)
    ));
}

#[tokio::test]
async fn a_duplicate_delivery_has_one_effect() {
    let f = fixture(0);
    let id = f.send(serde_json::json!({"word": "once"})).await;
    let message = f
        .transport
        .receive("q", 1, Duration::from_secs(1))
        .await
        .expect("receive")
        .remove(0);
    assert_eq!(f.runner.execute(&message.body, 1, None).await, Outcome::Ack);
    // The same message again (SQS at-least-once, or an ack that was lost).
    assert_eq!(f.runner.execute(&message.body, 2, None).await, Outcome::Ack);
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    let record = f
        .client
        .store()
        .get(&id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Success);
}

#[tokio::test]
async fn revoked_before_start_never_runs() {
    let f = fixture(0);
    let id = f
        .client
        .send(
            &spec(),
            serde_json::json!({"word": "x"}),
            SendOptions {
                countdown: Some(Duration::from_millis(200)),
                ..Default::default()
            },
        )
        .await
        .expect("send");
    f.client.store().revoke(&id).await.expect("revoke");
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Revoked);
    // Give the delayed message time to arrive and be skipped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_expired_task_is_revoked_not_run() {
    let f = fixture(0);
    let id = f
        .client
        .send(
            &spec(),
            serde_json::json!({"word": "x"}),
            SendOptions {
                expires: Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
                ..Default::default()
            },
        )
        .await
        .expect("send");
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Revoked);
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_task_name_fails_clearly() {
    let f = fixture(0);
    let unknown = TaskSpec::new("no_such_task").queue("q");
    let id = f
        .client
        .send(&unknown, serde_json::json!({}), SendOptions::default())
        .await
        .expect("send");
    let record = run_worker_until_final(&f, &id).await;
    assert_eq!(record.status, TaskState::Failure);
    assert!(
        record
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no_such_task"))
    );
}

#[tokio::test]
async fn priority_outside_0_to_9_is_refused() {
    let f = fixture(0);
    let err = f
        .client
        .send(
            &spec(),
            serde_json::json!({}),
            SendOptions {
                priority: Some(10),
                ..Default::default()
            },
        )
        .await
        .expect_err("bad priority");
    assert!(!err.is_retryable());
    assert_eq!(
        f.transport
            .receive("q", 1, Duration::from_millis(50))
            .await
            .expect("receive")
            .len(),
        0
    );
}

#[tokio::test]
async fn a_tick_delivered_twice_runs_once_and_a_failed_tick_can_run_again() {
    use celeriac_tasks::lambda::run_tick;
    use celeriac_tasks::schedule::{Tick, TickLock};

    let f = fixture(1);
    let registry = Registry::new().register(Flaky {
        fail_first: 1,
        calls: f.calls.clone(),
    });
    let runner = Runner::new(Arc::new(registry.clone()), f.kv.clone());
    let lock = TickLock::new(f.kv.clone());
    let tick = Tick {
        schedule: "every_minute".into(),
        task: "flaky".into(),
        args: serde_json::json!({"word": "tick"}),
        scheduled_time: "2026-11-22T10:01:00Z".parse().expect("time"),
    };
    // First delivery fails retryably: the tick is given back for Scheduler's retry.
    assert!(
        run_tick(&runner, &registry, &lock, &tick, None)
            .await
            .is_err()
    );
    // The retry runs it; a duplicate of that delivery does not.
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("retry runs");
    run_tick(&runner, &registry, &lock, &tick, None)
        .await
        .expect("duplicate acknowledged");
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        2,
        "one failed attempt, one success, no third run"
    );
    let record = TaskStore::new(f.kv.clone())
        .get(&tick.task_id())
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Success);
}

#[tokio::test]
async fn a_task_with_priority_queues_is_sent_to_the_queue_of_its_priority() {
    let f = fixture(0);
    let spec = spec().with_priority_queues();
    for (priority, queue) in [(Some(9), "q-high"), (None, "q"), (Some(1), "q-low")] {
        f.client
            .send(
                &spec,
                serde_json::json!({"word": "p"}),
                SendOptions {
                    priority,
                    ..Default::default()
                },
            )
            .await
            .expect("send");
        let got = f
            .transport
            .receive(queue, 10, Duration::from_millis(200))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1, "priority {priority:?} goes to {queue}");
        f.transport.ack(&got[0]).await.expect("ack");
    }
}

#[tokio::test]
async fn a_message_delivered_past_its_attempts_is_dead_lettered_without_running() {
    let f = fixture(0);
    f.send(serde_json::json!({"word": "crashy"})).await;
    let message = f
        .transport
        .receive("q", 1, Duration::from_secs(1))
        .await
        .expect("receive")
        .remove(0);
    // Its workers died on it four times (one attempt and three retries); the fifth stops it.
    let outcome = f.runner.execute(&message.body, 5, None).await;
    assert!(
        matches!(&outcome, Outcome::Dead(reason) if reason.contains("delivered 5 times")),
        "{outcome:?}"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}
