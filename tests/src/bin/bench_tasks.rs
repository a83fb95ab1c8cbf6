//! Task throughput, celeriac against Celery, on the same machine and redis-server.
//!
//! usage: bench_tasks [--tasks N] [--concurrency C]   (REDIS_URL; CELERIAC_VENV for Celery)
//!
//! celeriac: one producer sends N no-op tasks one after the other through `TaskClient`
//! over Redis Streams while an in-process `celeriac worker` (C concurrent tasks) runs
//! them; the clock stops when every task's record reads SUCCESS. Celery: the same through
//! `infra/bench/celery_noop.py` (prefork pool of C processes, Redis broker and backend).
//! Prints tasks/s for each, their ratio, the median enqueue-to-start latency, and the
//! median latency of one enqueue against one PING (about 1x: one round trip).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use celeriac_kv::RedisKv;
use celeriac_tasks::{
    RedisStreams, Registry, Runner, SendOptions, Task, TaskClient, TaskContext, TaskError,
    TaskSpec, TaskStore, Worker,
};

struct Noop;

#[async_trait]
impl Task for Noop {
    type Args = serde_json::Value;
    type Output = ();
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("noop")
    }
    async fn run(&self, _args: serde_json::Value, _ctx: &TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median PING round trip on the shared connection, in milliseconds.
async fn ping_ms(kv: &RedisKv) -> anyhow::Result<f64> {
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        let _: String = kv.query(&redis::cmd("PING")).await?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(samples))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tasks = arg("--tasks", 5000);
    let concurrency = arg("--concurrency", 8);
    let config = celeriac_platform::Config::from_env("bench_tasks")?;
    let redis = config.redis.context("set REDIS_URL")?;
    let kv = Arc::new(RedisKv::open(&redis).await?);
    let queue = format!("bench-{}", std::process::id());
    // The worker's receive linger, as `celeriac worker` runs it unless told otherwise.
    let linger = Duration::from_micros(arg(
        "--linger-us",
        celeriac_tasks::transport::redis_streams::DEFAULT_LINGER.as_micros() as usize,
    ) as u64);
    let streams = Arc::new(
        RedisStreams::new(kv.clone(), redis.clone(), "bench", Duration::from_secs(30))
            .with_linger(linger),
    );
    let registry = Arc::new(Registry::new().register(Noop));
    let worker = Worker::new(
        streams.clone(),
        Runner::new(registry, kv.clone()).with_lease(Duration::from_secs(30)),
        vec![queue.clone()],
        concurrency,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let client = TaskClient::new(streams, TaskStore::new(kv.clone()), "bench");
    let options = SendOptions {
        queue: Some(queue.clone()),
        ..SendOptions::default()
    };
    // Warm up: connections, consumer group, first allocation.
    client
        .send(&Noop.spec(), serde_json::Value::Null, options.clone())
        .await?;

    // One enqueue against one PING, measured while nothing else runs: a queue nobody reads.
    let ping = ping_ms(&kv).await?;
    let idle_queue = format!("{queue}-idle");
    let idle = SendOptions {
        queue: Some(idle_queue.clone()),
        ..SendOptions::default()
    };
    let mut enqueue_ms = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        client
            .send(&Noop.spec(), serde_json::Value::Null, idle.clone())
            .await?;
        enqueue_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let _: i64 = kv
        .query(redis::cmd("DEL").arg(format!("celeriac:{{q:{idle_queue}}}:stream")))
        .await?;

    let started = Instant::now();
    let mut ids = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        ids.push(
            client
                .send(&Noop.spec(), serde_json::Value::Null, options.clone())
                .await?,
        );
    }
    let enqueue_secs = started.elapsed().as_secs_f64();

    // Done when every record says SUCCESS; read them in chunks of 500 (one MGET each).
    let mut latencies = Vec::with_capacity(tasks);
    let mut pending: Vec<&String> = ids.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for chunk in pending.chunks(500) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|id| format!("celery-task-meta-{id}"))
                .collect();
            let values: Vec<Option<Vec<u8>>> = kv.query(redis::cmd("MGET").arg(&keys)).await?;
            for (id, value) in chunk.iter().zip(values) {
                let record: Option<celeriac_tasks::TaskRecord> =
                    value.and_then(|v| serde_json::from_slice(&v).ok());
                match record {
                    Some(r) if r.status == celeriac_tasks::TaskState::Success => {
                        if let Some(start) = r.started_at {
                            latencies.push(
                                (start - r.created_at).num_microseconds().unwrap_or(0) as f64
                                    / 1000.0,
                            );
                        }
                    }
                    _ => still.push(*id),
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = worker.await;
    let ours = tasks as f64 / seconds;
    let enqueue_median = median(enqueue_ms);

    let venv = std::env::var("CELERIAC_VENV").unwrap_or_else(|_| ".venv".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/bench/celery_noop.py");
    let url = redis_url_db(&std::env::var("REDIS_URL").unwrap_or_default(), 2);
    let output = std::process::Command::new(format!("{venv}/bin/python"))
        .args([script, &url, &tasks.to_string(), &concurrency.to_string()])
        .output()
        .context("run the Celery side (is celery in the venv? infra/standins install)")?;
    anyhow::ensure!(
        output.status.success(),
        "celery side failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let celery: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("celery side printed no JSON")?;
    let theirs = celery["tasks_per_s"].as_f64().unwrap_or(f64::NAN);

    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(
        out,
        "tasks {tasks}, worker concurrency {concurrency}, same redis-server"
    )?;
    writeln!(
        out,
        "celeriac  {ours:>9.0} tasks/s  (enqueue alone {:.0}/s; median enqueue-to-start {:.2} ms)",
        tasks as f64 / enqueue_secs,
        median(latencies)
    )?;
    writeln!(
        out,
        "celery    {theirs:>9.0} tasks/s  (median enqueue-to-start {:.2} ms)",
        celery["median_start_latency_ms"]
            .as_f64()
            .unwrap_or(f64::NAN)
    )?;
    writeln!(out, "ratio     {:>9.1}x", ours / theirs)?;
    writeln!(
        out,
        "one enqueue, idle: {enqueue_median:.3} ms median = {:.2}x one PING ({ping:.3} ms)",
        enqueue_median / ping
    )?;
    Ok(())
}

/// The same server, another database, so the two systems' keys stay apart.
fn redis_url_db(url: &str, db: u8) -> String {
    let base = url.trim_end_matches('/');
    let without_db = match base.rsplit_once('/') {
        Some((head, tail))
            if tail.chars().all(|c| c.is_ascii_digit())
                && head.contains("//")
                && head.len() > "redis://".len() =>
        {
            head
        }
        _ => base,
    };
    format!("{without_db}/{db}")
}
