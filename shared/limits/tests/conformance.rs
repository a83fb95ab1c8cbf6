//! One conformance suite for the rate-limit port, run against every adapter: memory,
//! Redis single node, the 3-node cluster and the TLS node (the last three from the
//! stand-ins started by `infra/standins`).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use celeriac_kv::RedisKv;
use celeriac_limits::{
    Algorithm, Decision, FailurePolicy, KeyBy, Limit, LimitError, LimitKey, MemoryLimiter,
    RateLimitLayer, RedisLimiter, SharedLimiter,
};
use celeriac_platform::config::RedisConfig;
use celeriac_testkit::unique_prefix;
use http::{Request, StatusCode};
use tower::ServiceExt;

async fn open_redis(config: Option<RedisConfig>) -> Option<SharedLimiter> {
    let kv = RedisKv::open(&config?).await.expect("valid redis config");
    celeriac_kv::KeyValue::ping(&kv)
        .await
        .expect("stand-in redis answers PING");
    // Generous: these tests share two cores with others hammering the same servers, and a
    // timeout here would be a failure policy, not a limit, at work.
    Some(Arc::new(
        RedisLimiter::new(Arc::new(kv)).with_timeout(Duration::from_secs(2)),
    ))
}

/// Two client addresses of this run only (so reruns against the same Redis start clean),
/// in different /64 networks.
fn addresses(p: &str) -> (IpAddr, IpAddr) {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    p.hash(&mut hasher);
    // fd00::/8 (unique local), then 44 bits of the run's hash, then the network number.
    let run = u128::from(hasher.finish() & 0x0000_ffff_ffff_fff0);
    let net = |n: u128| IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | ((run | n) << 64) | 1));
    (net(0), net(1))
}

async fn check(limiter: &SharedLimiter, limit: &Limit, key: &LimitKey) -> Decision {
    limiter.check(limit, key).await.expect("check")
}

/// In parallel tasks, so the adapter sees truly concurrent checks.
async fn hammer(limiter: &SharedLimiter, limit: Limit, key: &LimitKey, n: usize) -> Vec<Decision> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let limiter = limiter.clone();
            let key = key.clone();
            tokio::spawn(async move { limiter.check(&limit, &key).await })
        })
        .collect();
    let mut decisions = Vec::with_capacity(n);
    for task in tasks {
        decisions.push(task.await.expect("task").expect("check"));
    }
    decisions
}

async fn gcra_admits_the_burst_then_paces(limiter: SharedLimiter, clock: Clock, p: String) {
    // One request every 5 s on average, three at once. An interval this long is what lets
    // the test assume the burst, the refusal and the knocks all fall inside one interval
    // on a busy machine (at 500 ms, a stall of half a second failed a correct limiter).
    let interval = Duration::from_secs(5);
    let limit = Limit::gcra("gcra-pace", 2, 2 * interval, FailurePolicy::Closed).with_burst(3);
    let key = LimitKey::user(&p);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = check(&limiter, &limit, &key).await;
        assert!(d.allowed, "{d:?}");
        assert_eq!(d.limit, 3);
        assert_eq!(d.retry_after, Duration::ZERO);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);

    let denied = check(&limiter, &limit, &key).await;
    assert!(!denied.allowed, "{denied:?}");
    assert_eq!((denied.limit, denied.remaining), (3, 0));
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= interval,
        "{denied:?}"
    );
    assert!(
        denied.reset_after > 2 * interval && denied.reset_after <= 3 * interval,
        "{denied:?}"
    );
    // Knocking while refused is not counted: the wait does not grow.
    let mut wait = denied.retry_after;
    for _ in 0..5 {
        let again = check(&limiter, &limit, &key).await;
        assert!(!again.allowed);
        assert!(again.retry_after <= wait, "{again:?} after {wait:?}");
        wait = again.retry_after;
    }

    // Once the interval has passed on the limiter's clock (not the test's: time sync may
    // slew them apart), one more request, and only one.
    let storage_key = limit.storage_key(&key);
    let due = clock.now_us(&storage_key).await + wait.as_micros();
    while clock.now_us(&storage_key).await <= due {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paced = check(&limiter, &limit, &key).await;
    assert!(paced.allowed, "{paced:?}");
    assert_eq!(paced.remaining, 0);
    let next = check(&limiter, &limit, &key).await;
    assert!(!next.allowed, "{next:?}");
    assert!(next.retry_after > Duration::ZERO);
}

async fn sliding_log_admits_exactly_the_quota_under_concurrency(
    limiter: SharedLimiter,
    clock: Clock,
    p: String,
) {
    let window = Duration::from_secs(2);
    let limit = Limit::sliding_log("log-exact", 10, window, FailurePolicy::Closed);
    let key = LimitKey::user(&p);
    let storage_key = limit.storage_key(&key);

    for round in 0..2 {
        let decisions = hammer(&limiter, limit, &key, 40).await;
        let admitted: Vec<_> = decisions.iter().filter(|d| d.allowed).collect();
        assert_eq!(admitted.len(), 10, "round {round}: {decisions:?}");
        // Each admission saw the one before it: remaining counts down without a repeat.
        let mut remaining: Vec<u32> = admitted.iter().map(|d| d.remaining).collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..10).collect::<Vec<_>>(), "round {round}");
        for d in decisions.iter().filter(|d| !d.allowed) {
            assert_eq!((d.limit, d.remaining), (10, 0));
            assert!(
                d.retry_after > Duration::ZERO && d.retry_after <= window,
                "{d:?}"
            );
            assert!(
                d.reset_after >= d.retry_after && d.reset_after <= window,
                "{d:?}"
            );
        }
        // The 30 refusals were not logged: once the window has passed over the last
        // admission, the whole quota is back. Every admission was decided before this
        // reading, so a window past it on the limiter's clock they have all left.
        let quota_back = clock.now_us(&storage_key).await + window.as_micros();
        while clock.now_us(&storage_key).await <= quota_back {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The clock a limiter decides on, read by the test to judge it: the process's monotonic
/// clock for the memory adapter, `TIME` on the Redis node holding the key for the Redis
/// adapters. A test judging Redis on the client's monotonic clock fails on a correct
/// limiter whenever time sync slews the server's wall clock faster than the monotonic one
/// runs (seen: "4th admitted 997.9ms after the 1st").
#[derive(Debug, Clone)]
enum Clock {
    Process,
    Redis(Arc<RedisKv>),
}

impl Clock {
    async fn redis(config: Option<RedisConfig>) -> Option<Self> {
        let kv = RedisKv::open(&config?).await.expect("valid redis config");
        Some(Self::Redis(Arc::new(kv)))
    }

    /// Now, in microseconds from an origin fixed for the test run, on the clock that
    /// decides about `storage_key`.
    async fn now_us(&self, storage_key: &str) -> u128 {
        match self {
            Self::Process => {
                static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                ORIGIN.get_or_init(Instant::now).elapsed().as_micros()
            }
            Self::Redis(kv) => {
                // Through the key, so a cluster answers from the node whose clock the
                // limiter's script reads.
                let mut eval = redis::cmd("EVAL");
                eval.arg("local t = redis.call('TIME') return {t[1], t[2]}")
                    .arg(1)
                    .arg(storage_key);
                let time: Vec<String> = kv.query(&eval).await.expect("TIME");
                let part = |i: usize| time[i].parse::<u128>().expect("TIME is numeric");
                part(0) * 1_000_000 + part(1)
            }
        }
    }
}

async fn sliding_log_never_admits_before_a_window_has_passed(
    limiter: SharedLimiter,
    clock: Clock,
    p: String,
) {
    let window = Duration::from_millis(1000);
    let limit = Limit::sliding_log("log-window", 3, window, FailurePolicy::Closed);
    let key = LimitKey::user(&p);
    let storage_key = limit.storage_key(&key);
    // Read on the limiter's clock before the 1st is sent and after the 4th is answered:
    // the limiter decided on both in between, so these two readings must be a window apart.
    let first_sent = clock.now_us(&storage_key).await;
    for _ in 0..3 {
        assert!(check(&limiter, &limit, &key).await.allowed);
    }
    let mut refusals = 0;
    let fourth_answered = loop {
        let d = check(&limiter, &limit, &key).await;
        if d.allowed {
            break clock.now_us(&storage_key).await;
        }
        refusals += 1;
        assert!(refusals < 400, "never admitted again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refusals > 0);
    let apart = fourth_answered - first_sent;
    assert!(
        apart >= window.as_micros(),
        "4th admitted {apart} µs after the 1st, on the limiter's clock"
    );
}

async fn keys_are_isolated(limiter: SharedLimiter, p: String) {
    let limit = Limit::sliding_log(
        "isolation",
        1,
        Duration::from_secs(60),
        FailurePolicy::Closed,
    );
    let other_limit = Limit::sliding_log(
        "isolation-2",
        1,
        Duration::from_secs(60),
        FailurePolicy::Closed,
    );
    let same_name_gcra = Limit::gcra(
        "isolation",
        1,
        Duration::from_secs(60),
        FailurePolicy::Closed,
    );
    let (ip_a, ip_b) = addresses(&p);

    let user_a = LimitKey::user(format!("{p}:a"));
    assert!(check(&limiter, &limit, &user_a).await.allowed);
    assert!(!check(&limiter, &limit, &user_a).await.allowed);
    assert!(
        check(&limiter, &limit, &LimitKey::user(format!("{p}:b")))
            .await
            .allowed
    );
    assert!(check(&limiter, &other_limit, &user_a).await.allowed);
    assert!(check(&limiter, &same_name_gcra, &user_a).await.allowed);
    assert!(
        check(&limiter, &limit, &user_a.clone().and_route("/x"))
            .await
            .allowed
    );

    assert!(check(&limiter, &limit, &LimitKey::ip(ip_a)).await.allowed);
    assert!(!check(&limiter, &limit, &LimitKey::ip(ip_a)).await.allowed);
    assert!(check(&limiter, &limit, &LimitKey::ip(ip_b)).await.allowed);
    assert!(
        check(&limiter, &limit, &LimitKey::ip(ip_a).and_route("/x"))
            .await
            .allowed
    );

    // Reset lifts exactly one key's count.
    limiter.reset(&limit, &user_a).await.expect("reset");
    assert!(check(&limiter, &limit, &user_a).await.allowed);
    assert!(!check(&limiter, &limit, &LimitKey::ip(ip_a)).await.allowed);
}

async fn unusable_limits_are_refused(limiter: SharedLimiter, p: String) {
    let key = LimitKey::user(&p);
    let zero = Limit {
        name: "zero",
        algorithm: Algorithm::SlidingLog {
            quota: 0,
            window: Duration::from_secs(1),
        },
        on_failure: FailurePolicy::Open,
    };
    let err = limiter.check(&zero, &key).await.expect_err("quota 0");
    assert!(matches!(err, LimitError::Invalid(_)), "{err:?}");
    assert!(!err.is_retryable());
    let too_fast = Limit::gcra(
        "fast",
        5_000_000,
        Duration::from_secs(1),
        FailurePolicy::Open,
    );
    assert!(matches!(
        limiter.check(&too_fast, &key).await,
        Err(LimitError::Invalid(_))
    ));
}

async fn http_layer_sets_headers_and_answers_429(limiter: SharedLimiter, p: String) {
    let limit = Limit::sliding_log("http", 2, Duration::from_secs(60), FailurePolicy::Closed);
    let app = Router::new()
        .route("/limited", get(|| async { "ok" }))
        .route_layer(RateLimitLayer::new(limiter, limit, KeyBy::IpAndRoute));
    let (ip_a, ip_b) = addresses(&p);
    let request = |peer: IpAddr, forwarded: &str| {
        let mut request = Request::get("/limited")
            .header("x-forwarded-for", forwarded)
            .body(Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer, 40_000)));
        request
    };

    for remaining in ["1", "0"] {
        let response = app
            .clone()
            .oneshot(request(ip_a, "203.0.113.1"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h["ratelimit-limit"], "2");
        assert_eq!(h["ratelimit-remaining"], remaining);
        assert_eq!(h["ratelimit-reset"], "60");
    }

    // A new X-Forwarded-For each time changes nothing: the peer is the key.
    let response = app
        .clone()
        .oneshot(request(ip_a, "203.0.113.99"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = response.headers().clone();
    let retry_after: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(h["ratelimit-limit"], "2");
    assert_eq!(h["ratelimit-remaining"], "0");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error"]["code"], "rate_limited");
    assert!(
        json["error"]["message"]
            .as_str()
            .expect("message")
            .contains("http")
    );

    let response = app
        .oneshot(request(ip_b, "203.0.113.1"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-remaining"], "1");
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr, $clock:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn limiter() -> Option<SharedLimiter> { $open }
            async fn clock() -> Option<Clock> { $clock }
            conformance!(@clocked
                gcra_admits_the_burst_then_paces,
                sliding_log_admits_exactly_the_quota_under_concurrency,
                sliding_log_never_admits_before_a_window_has_passed
            );
            conformance!(@cases
                keys_are_isolated,
                unusable_limits_are_refused,
                http_layer_sets_headers_and_answers_429
            );
        }
    )*};
    (@clocked $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let (Some(limiter), Some(clock)) = (limiter().await, clock().await) else { return };
            super::$case(limiter, clock, unique_prefix(stringify!($case))).await;
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(limiter) = limiter().await else { return };
            super::$case(limiter, unique_prefix(stringify!($case))).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryLimiter::new()) as SharedLimiter), Some(Clock::Process);
    redis_single => open_redis(celeriac_testkit::redis_single()).await,
        Clock::redis(celeriac_testkit::redis_single()).await;
    redis_cluster => open_redis(celeriac_testkit::redis_cluster()).await,
        Clock::redis(celeriac_testkit::redis_cluster()).await;
    redis_tls => open_redis(celeriac_testkit::redis_tls()).await,
        Clock::redis(celeriac_testkit::redis_tls()).await;
}

/// Every key the Redis adapter writes expires once the counter would be back to its
/// initial state, and sits in one hash slot.
#[tokio::test]
async fn redis_keys_expire_with_their_window() {
    let Some(config) = celeriac_testkit::redis_cluster() else {
        return;
    };
    let kv = Arc::new(RedisKv::open(&config).await.expect("redis"));
    let limiter = RedisLimiter::new(kv.clone()).with_timeout(Duration::from_secs(2));
    let key = LimitKey::user(unique_prefix("ttl"));
    let log = Limit::sliding_log("ttl-log", 5, Duration::from_secs(30), FailurePolicy::Open);
    let gcra =
        Limit::gcra("ttl-gcra", 1, Duration::from_secs(20), FailurePolicy::Open).with_burst(4);
    for limit in [log, gcra] {
        celeriac_limits::RateLimiter::check(&limiter, &limit, &key)
            .await
            .expect("check");
        let storage_key = limit.storage_key(&key);
        let ttl = celeriac_kv::KeyValue::ttl(&*kv, &storage_key)
            .await
            .expect("ttl")
            .unwrap_or_else(|| panic!("{storage_key} has no TTL"));
        assert!(
            ttl > Duration::from_secs(15) && ttl <= Duration::from_secs(30),
            "{storage_key}: {ttl:?}"
        );
    }
}
