//! One Redis round trip, bare and inside what celeriac builds on it: a raw `GET`, a cache
//! hit, a GCRA check and a sliding-log check, against the same redis-server.
//!
//! usage: bench_redis [--iterations N] [--warmup W]   (REDIS_URL)
//!
//! Every round runs the four operations one after the other on one multiplexed connection,
//! one operation in flight, so a noisy neighbour slows all four alike. W rounds (200) warm
//! the connection, the server's script cache and the allocator; N rounds (5000) are timed.
//! Prints each operation's median and p99, their ratios to the raw `GET`'s, and a verdict
//! per budget (on medians): a cache hit within 1.3x of a raw `GET`, a limiter check within
//! 1.6x, each in one round trip.
//!
//! Round trips are counted, not assumed. A second set of the same clients reaches the
//! server through a relay in this process, out of the timed path, which reads every
//! command the clients send and counts a round trip each time a request follows a reply.
//! Counting at the client rather than with `INFO commandstats` because the server's
//! counters include everyone else's commands on a shared server, and the commands a
//! script calls, which cost no round trip.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use celeriac_cache::{Cache, CacheConfig, CacheKey};
use celeriac_kv::{KeyValue, RedisKv};
use celeriac_limits::{FailurePolicy, Limit, LimitKey, RateLimiter, RedisLimiter};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Admits every check at this bench's pace (a round of four round trips lasts far longer
/// than the 10 µs between admissions): admitting is the path that writes, the dearer one.
const GCRA: Limit = Limit::gcra(
    "bench-gcra",
    100_000,
    Duration::from_secs(1),
    FailurePolicy::Open,
)
.with_burst(100);

/// Keeps the sorted set small with a quota never reached and a short window on one key:
/// the log holds only the last 10 ms of checks (a few dozen entries at this pace, what a
/// real quota of tens holds), and each check trims the entries that left the window, as a
/// real log does.
const SLIDING_LOG: Limit =
    Limit::sliding_log("bench-log", 100_000, LOG_WINDOW, FailurePolicy::Open);
const LOG_WINDOW: Duration = Duration::from_millis(10);

const ENTRY_TTL: Duration = Duration::from_secs(600);

/// Operations measured through the relay to count their round trips.
const COUNTED_OPS: usize = 100;

#[derive(Debug, Serialize, Deserialize)]
struct Course {
    id: u64,
    title: String,
    chapters: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    RawGet,
    CacheHit,
    Gcra,
    SlidingLog,
}

impl Op {
    /// In declaration order, so `op as usize` indexes the per-operation results.
    const ALL: [Self; 4] = [Self::RawGet, Self::CacheHit, Self::Gcra, Self::SlidingLog];

    fn label(self) -> &'static str {
        match self {
            Self::RawGet => "raw GET",
            Self::CacheHit => "cache hit",
            Self::Gcra => "GCRA check",
            Self::SlidingLog => "sliding log",
        }
    }
}

/// The clients under test, sharing one Redis connection as a function's do.
struct Clients {
    kv: Arc<RedisKv>,
    cache: Cache,
    limiter: RedisLimiter,
    entry: CacheKey,
    raw_key: String,
    caller: LimitKey,
    chapters: usize,
}

impl Clients {
    /// Connects and stores the ~1 KB entry the cache hits read.
    async fn open(redis: &RedisConfig, prefix: &str) -> anyhow::Result<Self> {
        let kv = Arc::new(RedisKv::open(redis).await?);
        let cache = Cache::new(
            kv.clone(),
            CacheConfig {
                prefix: prefix.to_owned(),
                ..CacheConfig::default()
            },
        );
        let course = Course {
            id: 1,
            title: "Serverless Rust".into(),
            chapters: (0..24)
                .map(|i| format!("chapter {i}: a title of some length"))
                .collect(),
        };
        let entry = CacheKey::new("course", "1");
        anyhow::ensure!(
            cache.put(&entry, &course, ENTRY_TTL).await,
            "could not store the entry"
        );
        Ok(Self {
            limiter: RedisLimiter::new(kv.clone()),
            kv,
            cache,
            entry,
            raw_key: format!("{prefix}:v1:course:1"),
            caller: LimitKey::user(prefix),
            chapters: course.chapters.len(),
        })
    }

    async fn run(&self, op: Op) -> anyhow::Result<()> {
        match op {
            Op::RawGet => {
                self.kv.get(&self.raw_key).await?.context("entry missing")?;
            }
            Op::CacheHit => {
                // A miss would compute this error, so every timed read is a hit.
                let course: Course = self
                    .cache
                    .get_or_compute(&self.entry, ENTRY_TTL, || async {
                        Err("a miss during the benchmark")
                    })
                    .await
                    .map_err(anyhow::Error::msg)?;
                anyhow::ensure!(course.chapters.len() == self.chapters, "wrong value");
            }
            Op::Gcra | Op::SlidingLog => {
                let limit = if op == Op::Gcra { &GCRA } else { &SLIDING_LOG };
                let decision = self.limiter.check(limit, &self.caller).await?;
                anyhow::ensure!(
                    decision.allowed,
                    "{} denied a check; the bench times admitted ones",
                    limit.name
                );
            }
        }
        Ok(())
    }

    async fn remove_keys(&self) {
        self.cache.invalidate(&self.entry).await;
        for limit in [&GCRA, &SLIDING_LOG] {
            let _ = self.limiter.reset(limit, &self.caller).await;
        }
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

/// What the counting clients sent since the last look.
#[derive(Debug, Default)]
struct Traffic {
    round_trips: usize,
    commands: BTreeMap<String, usize>,
}

/// A TCP relay between the counting clients and Redis that reads what they send.
struct Relay {
    addr: SocketAddr,
    traffic: Arc<Mutex<Traffic>>,
}

impl Relay {
    async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let seen = traffic.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Dropping the client on a failed connect fails its connect in turn.
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    tokio::spawn(relay_connection(client, server, seen.clone()));
                }
            }
        });
        Ok(Self { addr, traffic })
    }

    fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn relay_connection(client: TcpStream, server: TcpStream, traffic: Arc<Mutex<Traffic>>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // True once the server has answered since the client last wrote: the next request
    // starts a new round trip. Requests written back to back before an answer share one.
    let answered = AtomicBool::new(true);
    let requests = async {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut unparsed = Vec::new();
        loop {
            let n = match from_client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buffer[..n];
            {
                let mut seen = traffic.lock().unwrap_or_else(PoisonError::into_inner);
                if answered.swap(false, Ordering::SeqCst) {
                    seen.round_trips += 1;
                }
                unparsed.extend_from_slice(chunk);
                while let Some((name, used)) = next_command(&unparsed) {
                    *seen.commands.entry(name).or_default() += 1;
                    unparsed.drain(..used);
                }
            }
            if to_server.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let replies = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from_server.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Marked before the client can see the answer, so its next request counts anew.
            answered.store(true, Ordering::SeqCst);
            if to_client.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = replies => {}
    }
}

/// The name of the complete command at the start of `bytes` (a RESP array of bulk
/// strings, as client libraries send commands) and its length in bytes; `None` until the
/// whole command has arrived.
fn next_command(bytes: &[u8]) -> Option<(String, usize)> {
    fn line(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
        let rest = bytes.get(from..)?;
        let end = rest.windows(2).position(|pair| pair == b"\r\n")?;
        let number = std::str::from_utf8(rest.get(1..end)?).ok()?.parse().ok()?;
        Some((number, from + end + 2))
    }
    let (count, mut at) = line(bytes, 0).filter(|_| bytes.first() == Some(&b'*'))?;
    let mut name = String::new();
    for index in 0..count {
        let (length, start) = line(bytes, at).filter(|_| bytes.get(at) == Some(&b'$'))?;
        let argument = bytes.get(start..start + length)?;
        if index == 0 {
            name = String::from_utf8_lossy(argument).to_uppercase();
        }
        at = start + length + 2;
    }
    (at <= bytes.len()).then_some((name, at))
}

/// `(user-info@, host:port, the rest)` of a plain `redis://` URL.
fn split_redis_url(url: &str) -> Option<(&str, String, &str)> {
    let rest = url.strip_prefix("redis://")?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (user_info, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let host_port = if host_port.ends_with(']') || !host_port.contains(':') {
        format!("{host_port}:6379")
    } else {
        host_port.to_owned()
    };
    Some((user_info, host_port, tail))
}

/// Each operation's traffic over [`COUNTED_OPS`] runs, through a relay to `url`'s server;
/// `None` when the relay cannot read the traffic (TLS) or follow it (a cluster).
async fn count_round_trips(
    redis: &RedisConfig,
    url: &str,
    prefix: &str,
) -> anyhow::Result<Option<Vec<Traffic>>> {
    let Some((user_info, upstream, tail)) = split_redis_url(url) else {
        return Ok(None);
    };
    if !matches!(redis.topology, RedisTopology::Single(_)) {
        return Ok(None);
    }
    let relay = Relay::start(upstream).await?;
    let relayed = HashMap::from([(
        "REDIS_URL".to_owned(),
        format!("redis://{user_info}{}{tail}", relay.addr),
    )]);
    let relayed = celeriac_platform::Config::from_source(&relayed, "bench_redis")?
        .redis
        .context("relayed redis config")?;
    let clients = Clients::open(&relayed, prefix).await?;
    let mut counts = Vec::with_capacity(Op::ALL.len());
    for op in Op::ALL {
        // The first run loads a script on NOSCRIPT; the timed clients were past that too.
        clients.run(op).await?;
        relay.take();
        for _ in 0..COUNTED_OPS {
            clients.run(op).await?;
        }
        counts.push(relay.take());
    }
    Ok(Some(counts))
}

#[allow(clippy::cast_precision_loss)]
fn per_op(count: usize) -> f64 {
    count as f64 / COUNTED_OPS as f64
}

/// "1.00 (GET)": round trips per operation, and the commands each operation sent.
fn describe(traffic: &Traffic) -> String {
    let commands: Vec<String> = traffic
        .commands
        .iter()
        .map(|(name, &count)| {
            if count == COUNTED_OPS {
                name.clone()
            } else {
                format!("{name} x{:.2}", per_op(count))
            }
        })
        .collect();
    format!(
        "{:.2} ({})",
        per_op(traffic.round_trips),
        commands.join(", ")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations = arg("--iterations", 5000);
    let warmup = arg("--warmup", 200);
    let config = celeriac_platform::Config::from_env("bench_redis")?;
    let redis = config.redis.context("set REDIS_URL")?;
    let prefix = format!("bench-redis-{}", std::process::id());
    let clients = Clients::open(&redis, &prefix).await?;
    let bytes = clients
        .kv
        .get(&clients.raw_key)
        .await?
        .context("entry missing")?
        .len();

    let mut samples: Vec<Vec<f64>> = Op::ALL
        .iter()
        .map(|_| Vec::with_capacity(iterations))
        .collect();
    for round in 0..warmup + iterations {
        for (op, times) in Op::ALL.into_iter().zip(samples.iter_mut()) {
            let t = Instant::now();
            clients.run(op).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            if round >= warmup {
                times.push(ms);
            }
        }
    }
    let log_entries: u64 = clients
        .kv
        .query(redis::cmd("ZCARD").arg(SLIDING_LOG.storage_key(&clients.caller)))
        .await?;
    let url = std::env::var("REDIS_URL").unwrap_or_default();
    let counted = count_round_trips(&redis, &url, &prefix).await;
    clients.remove_keys().await;
    let counted = counted?;

    let stats: Vec<(f64, f64)> = samples
        .iter_mut()
        .map(|times| (percentile(times, 0.5), percentile(times, 0.99)))
        .collect();
    let (get_median, get_p99) = stats.first().copied().unwrap_or((f64::NAN, f64::NAN));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "entry {bytes} bytes; {iterations} rounds of the four after {warmup} warm-up rounds, \
         one op in flight, one connection, same redis-server"
    )?;
    writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>10} {:>8}  round trips/op (commands)",
        "", "median", "p99", "median/GET", "p99/GET"
    )?;
    for (&op, &(median, p99)) in Op::ALL.iter().zip(&stats) {
        let trips = counted
            .as_ref()
            .and_then(|c| c.get(op as usize))
            .map_or_else(|| "not counted (TLS or cluster)".to_owned(), describe);
        writeln!(
            out,
            "{:<12} {median:>6.3} ms {p99:>6.3} ms {:>9.2}x {:>7.2}x  {trips}",
            op.label(),
            median / get_median,
            p99 / get_p99,
        )?;
    }
    writeln!(
        out,
        "sliding log held {log_entries} entries after the last check ({} ms window)",
        LOG_WINDOW.as_millis()
    )?;

    let ratio = |op: Op| stats.get(op as usize).map_or(f64::NAN, |s| s.0) / get_median;
    let one_trip = |op: Op| {
        counted
            .as_ref()
            .and_then(|c| c.get(op as usize))
            .map(|t| t.round_trips == COUNTED_OPS)
    };
    let verdict = |ops: &[Op], budget: f64| {
        let slower = ops.iter().any(|&op| ratio(op) > budget);
        let trips: Vec<Option<bool>> = ops.iter().map(|&op| one_trip(op)).collect();
        let more_trips = trips.contains(&Some(false));
        match (slower, more_trips) {
            (true, true) => "NOT met (slower than the budget, and more than one round trip)",
            (true, false) => "NOT met (slower than the budget)",
            (false, true) => "NOT met (more than one round trip)",
            (false, false) if trips.contains(&None) => "met on time; round trips not counted",
            (false, false) => "met",
        }
    };
    writeln!(
        out,
        "budget: cache hit within 1.3x of a raw GET, one round trip: {:.2}x, {}",
        ratio(Op::CacheHit),
        verdict(&[Op::CacheHit], 1.3)
    )?;
    writeln!(
        out,
        "budget: limiter check within 1.6x of a raw GET, one round trip: GCRA {:.2}x, sliding log {:.2}x, {}",
        ratio(Op::Gcra),
        ratio(Op::SlidingLog),
        verdict(&[Op::Gcra, Op::SlidingLog], 1.6)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_whole_and_one_at_a_time() {
        let get = b"*2\r\n$3\r\nget\r\n$5\r\nk:1\r\n\r\n";
        // `k:1\r\n` is the key's five bytes: a CRLF inside an argument is data, not an end.
        assert_eq!(next_command(get), Some(("GET".to_owned(), get.len())));
        let mut two = get.to_vec();
        two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(next_command(&two), Some(("GET".to_owned(), get.len())));
        for cut in 0..get.len() {
            assert_eq!(next_command(&get[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn the_relay_reaches_the_host_of_the_url_with_its_credentials_and_database() {
        assert_eq!(
            split_redis_url("redis://:pw@cache.example:6380/2"),
            Some((":pw@", "cache.example:6380".to_owned(), "/2"))
        );
        assert_eq!(
            split_redis_url("redis://127.0.0.1"),
            Some(("", "127.0.0.1:6379".to_owned(), ""))
        );
        assert_eq!(
            split_redis_url("redis://[::1]?protocol=resp3"),
            Some(("", "[::1]:6379".to_owned(), "?protocol=resp3"))
        );
        assert_eq!(split_redis_url("rediss://cache.example:6379"), None);
    }
}
