//! How long a task waits for the worker, by the ratio of queues to permits.
//!
//! usage: bench_worker_wait [--tasks N]
//!
//! A worker over the in-process transport (no services needed) polls Q queues with C
//! permits; one producer sends N no-op tasks to one of the queues, 20 ms apart, so each
//! finds the worker idle; the others stay empty. A task's wait is from its send to the
//! moment it starts. Prints the median and 95th percentile per shape, and each shape's
//! median against one queue's: pollers hold a permit while they wait for their queue, so
//! with more queues than permits a queue's task can wait for another queue's idle receive.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_tasks::{
    InProcess, Registry, Runner, SendOptions, Task, TaskClient, TaskContext, TaskError, TaskSpec,
    TaskStore, Worker,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

fn stamp() -> TaskSpec {
    TaskSpec::new("stamp")
}

/// Reports when it starts.
struct Stamp(mpsc::UnboundedSender<Instant>);

#[async_trait]
impl Task for Stamp {
    type Args = serde_json::Value;
    type Output = ();
    fn spec(&self) -> TaskSpec {
        stamp()
    }
    async fn run(&self, _args: serde_json::Value, _ctx: &TaskContext) -> Result<(), TaskError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

/// Median and 95th percentile of the waits, in milliseconds.
async fn waits(queues: usize, permits: usize, tasks: usize) -> anyhow::Result<(f64, f64)> {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let transport = Arc::new(InProcess::new(Duration::from_secs(30)));
    let registry = Arc::new(Registry::new().register(Stamp(started_tx)));
    let names: Vec<String> = (0..queues).map(|q| format!("q{q}")).collect();
    let worker = Worker::new(
        transport.clone(),
        Runner::new(registry, kv.clone()),
        names.clone(),
        permits,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let client = TaskClient::new(transport, TaskStore::new(kv), "bench");
    let options = SendOptions {
        queue: names.last().cloned(),
        ..SendOptions::default()
    };
    // Let every poller reach its first receive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let sent = Instant::now();
        client
            .send(&stamp(), serde_json::Value::Null, options.clone())
            .await?;
        let start = started
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("worker stopped"))?;
        samples.push((start - sent).as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await?;
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i]
    };
    Ok((at(0.5), at(0.95)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tasks = args
        .iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{tasks} tasks, 20 ms apart, to one queue; in-process transport"
    )?;
    writeln!(out, "queues  permits  median ms  p95 ms  median vs 1 queue")?;
    let mut base = None;
    for (queues, permits) in [(1, 8), (8, 8), (10, 8), (10, 10), (12, 2)] {
        let (median, p95) = waits(queues, permits, tasks).await?;
        let base = *base.get_or_insert(median);
        writeln!(
            out,
            "{queues:>6}  {permits:>7}  {median:>9.3}  {p95:>6.3}  {:>16.1}x",
            median / base
        )?;
    }
    Ok(())
}
