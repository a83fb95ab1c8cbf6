//! A cache hit against a raw `GET` of the same entry, on the same connection.
//!
//! usage: bench_cache [--reads N]   (REDIS_URL)
//!
//! Stores one ~1 KB entry through `Cache::put`, then alternates a raw `GET` of its key
//! (bytes only) with `Cache::get_or_compute` on it (a hit: `GET`, JSON decode, counters),
//! N times each, and prints both medians and p99s and the hit/GET ratio (budget: 1.3x).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use celeriac_cache::{Cache, CacheConfig, CacheKey};
use celeriac_kv::{KeyValue, RedisKv};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Course {
    id: u64,
    title: String,
    chapters: Vec<String>,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    // Truncation picks the sample at or below the rank, which is what a percentile means here.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((values.len().saturating_sub(1)) as f64 * p) as usize;
    values.get(rank).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let reads = arg("--reads", 5000);
    let config = celeriac_platform::Config::from_env("bench_cache")?;
    let redis = config.redis.context("set REDIS_URL")?;
    let kv = Arc::new(RedisKv::open(&redis).await?);
    let prefix = format!("bench-cache-{}", std::process::id());
    let cache = Cache::new(
        kv.clone(),
        CacheConfig {
            prefix: prefix.clone(),
            ..CacheConfig::default()
        },
    );
    let key = CacheKey::new("course", "1");
    let course = Course {
        id: 1,
        title: "Serverless Rust".into(),
        chapters: (0..24)
            .map(|i| format!("chapter {i}: a title of some length"))
            .collect(),
    };
    let ttl = Duration::from_secs(600);
    anyhow::ensure!(
        cache.put(&key, &course, ttl).await,
        "could not store the entry"
    );
    let raw_key = format!("{prefix}:v1:course:1");
    let bytes = kv.get(&raw_key).await?.context("entry missing")?.len();

    let mut raw = Vec::with_capacity(reads);
    let mut hit = Vec::with_capacity(reads);
    for round in 0..reads + 200 {
        let t = Instant::now();
        kv.get(&raw_key).await?.context("entry missing")?;
        let raw_ms = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        let read: Course = cache
            .get_or_compute(&key, ttl, || async { Err("a miss during the benchmark") })
            .await
            .map_err(anyhow::Error::msg)?;
        let hit_ms = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(read.chapters.len() == course.chapters.len(), "wrong value");
        // The first rounds warm the connection and allocator.
        if round >= 200 {
            raw.push(raw_ms);
            hit.push(hit_ms);
        }
    }
    cache.invalidate(&key).await;

    let (raw_median, hit_median) = (percentile(&mut raw, 0.5), percentile(&mut hit, 0.5));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "entry {bytes} bytes, {reads} reads each, alternating, one connection"
    )?;
    writeln!(
        out,
        "raw GET    median {raw_median:.3} ms  p99 {:.3} ms",
        percentile(&mut raw, 0.99)
    )?;
    writeln!(
        out,
        "cache hit  median {hit_median:.3} ms  p99 {:.3} ms",
        percentile(&mut hit, 0.99)
    )?;
    writeln!(
        out,
        "ratio      {:.2}x (budget 1.3x)",
        hit_median / raw_median
    )?;
    Ok(())
}
