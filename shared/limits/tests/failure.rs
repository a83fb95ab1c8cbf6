//! Failure policies against a Redis that is not there, one that stalls, and one that dies
//! and comes back: fail-open admits and counts, fail-closed refuses with 503, and neither
//! waits longer than the limiter's timeout. The stalled and restarted servers are private
//! redis-servers of this test, never the shared stand-in.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::routing::get;
use celeriac_kv::RedisKv;
use celeriac_limits::{
    Admission, FailurePolicy, KeyBy, Limit, LimitError, LimitKey, RateLimitLayer, RedisLimiter,
    Refusal, SharedLimiter, enforce, unchecked_total,
};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_testkit::{dead_address, free_port, standin, unique_prefix};
use http::{Request, StatusCode};
use tower::ServiceExt;

const OPEN: Limit = Limit::gcra(
    "fail-open",
    100,
    Duration::from_secs(60),
    FailurePolicy::Open,
);
const CLOSED: Limit = Limit::sliding_log(
    "fail-closed",
    3,
    Duration::from_secs(60),
    FailurePolicy::Closed,
);

/// The connection's own timeouts are long, so what bounds a check is the limiter's.
fn config(address: &str) -> RedisConfig {
    RedisConfig {
        topology: RedisTopology::Single(format!("redis://{address}").into()),
        ca_file: None,
        response_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_millis(500),
    }
}

async fn limiter(address: &str) -> Arc<RedisLimiter> {
    let kv = RedisKv::open(&config(address)).await.expect("valid config");
    Arc::new(RedisLimiter::new(Arc::new(kv)).with_timeout(Duration::from_millis(300)))
}

async fn body_json(response: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).expect("json")
}

/// What both policies do while `limiter` cannot answer.
async fn assert_policies_apply(limiter: &SharedLimiter, key: &LimitKey) {
    let err = limiter.check(&CLOSED, key).await.expect_err("no redis");
    assert!(
        matches!(err, LimitError::Unavailable(_)) && err.is_retryable(),
        "{err:?}"
    );

    let before = unchecked_total();
    let admission = enforce(&**limiter, &OPEN, key)
        .await
        .expect("fail-open admits");
    assert_eq!(admission, Admission::Unchecked);
    assert!(
        unchecked_total() > before,
        "an unchecked request is counted"
    );

    let refusal = enforce(&**limiter, &CLOSED, key)
        .await
        .expect_err("fail-closed refuses");
    assert!(matches!(refusal, Refusal::Failed { .. }), "{refusal:?}");
    let response = refusal.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!response.headers().contains_key("retry-after"));
    let json = body_json(response).await;
    assert_eq!(json["error"]["code"], "unavailable");
    assert_eq!(
        json["error"]["message"],
        "rate limiter is unavailable, try again shortly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_open_or_closed_as_declared() {
    let limiter: SharedLimiter = limiter(&dead_address()).await;
    let key = LimitKey::user(unique_prefix("dead"));
    assert_policies_apply(&limiter, &key).await;

    // The same through the HTTP layer.
    let app = Router::new()
        .route("/open", get(|| async { "ok" }))
        .route_layer(RateLimitLayer::new(limiter.clone(), OPEN, KeyBy::Ip))
        .merge(
            Router::new()
                .route("/closed", get(|| async { "ok" }))
                .route_layer(RateLimitLayer::new(limiter, CLOSED, KeyBy::Ip)),
        );
    let request = |path: &str| {
        let mut request = Request::get(path).body(Body::empty()).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(std::net::SocketAddr::from(([192, 0, 2, 1], 1))));
        request
    };
    let response = app
        .clone()
        .oneshot(request("/open"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response.headers().contains_key("ratelimit-remaining"),
        "nothing was counted, so nothing is claimed"
    );
    let response = app.oneshot(request("/closed")).await.expect("response");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body_json(response).await["error"]["code"], "unavailable");
}

/// A redis-server of this test's own, killed when dropped.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(bin: &str, port: u16) -> Self {
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn until_answering(limiter: &SharedLimiter, key: &LimitKey) {
    for _ in 0..100 {
        if limiter.check(&CLOSED, key).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the limiter did not recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_cut_off_by_the_timeout() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let server = PrivateRedis::start(&bin, free_port());
    let limiter: SharedLimiter = limiter(&server.address()).await;
    let key = LimitKey::user(unique_prefix("stalled"));
    until_answering(&limiter, &key).await;

    // CLIENT PAUSE holds every other client's commands for 2 s: Redis is up but silent,
    // and the connection's own 10 s response timeout would wait it out.
    let admin = redis::Client::open(format!("redis://{}", server.address())).expect("client");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .expect("pause");
    assert_policies_apply(&limiter, &key).await;

    // Once Redis answers again, so does the limiter, on the same connection.
    until_answering(&limiter, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_dies_and_returns_is_refused_then_used_again() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let port = free_port();
    let mut server = PrivateRedis::start(&bin, port);
    let limiter: SharedLimiter = limiter(&server.address()).await;
    let key = LimitKey::user(unique_prefix("restart"));
    let first = limiter.check(&CLOSED, &key).await.expect("redis is up");
    assert!(first.allowed && first.remaining == 2);

    server.stop();
    assert_policies_apply(&limiter, &key).await;

    // Started again, empty (no persistence): the limiter reconnects by itself.
    let _server = PrivateRedis::start(&bin, port);
    until_answering(&limiter, &key).await;
}
