//! `celeriac worker` on Redis Streams, as an operator runs it: tasks enqueued straight to
//! Redis by `celeriac call` run, and SIGTERM stops the worker cleanly.

use std::process::{Command, Stdio};
use std::time::Duration;

use celeriac_testkit::{standin, workspace_binary};

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
