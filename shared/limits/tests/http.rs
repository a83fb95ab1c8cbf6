//! The caller's address comes from API Gateway or the TCP peer, never from a header the
//! caller writes; and a handler applying limits itself gets the platform's 429.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use celeriac_limits::{
    ClientIp, FailurePolicy, KeyBy, Limit, LimitKey, MemoryLimiter, RateLimitLayer, SharedLimiter,
    client_ip, enforce,
};
use http::{Request, StatusCode};
use tower::ServiceExt;

const LOGIN_PER_IP: Limit = Limit::sliding_log(
    "login-ip",
    2,
    Duration::from_secs(60),
    FailurePolicy::Closed,
);

fn lambda_event(json: &str) -> Request<Body> {
    lambda_http::request::from_str(json)
        .expect("API Gateway event")
        .map(|body| Body::from(body.to_vec()))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn behind_api_gateway_the_source_ip_wins_over_forwarded_headers() {
    let v2 = lambda_event(include_str!("events/apigw-v2-forged-xff.json"));
    assert_eq!(v2.headers()["x-forwarded-for"], "10.9.8.7");
    assert_eq!(client_ip(&v2.into_parts().0), Some(ip("203.0.113.7")));

    let rest = lambda_event(include_str!("events/apigw-rest-forged-xff.json"));
    assert!(rest.headers().contains_key("x-forwarded-for"));
    assert_eq!(client_ip(&rest.into_parts().0), Some(ip("198.51.100.23")));
}

#[test]
fn under_the_dev_server_the_peer_wins_and_headers_alone_give_nothing() {
    let forged = || {
        Request::get("/")
            .header("x-forwarded-for", "10.9.8.7")
            .header("forwarded", "for=10.9.8.7")
            .header("x-real-ip", "10.9.8.7")
            .body(())
            .expect("request")
    };
    assert_eq!(client_ip(&forged().into_parts().0), None);

    let mut request = forged();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 44], 51_000))));
    assert_eq!(client_ip(&request.into_parts().0), Some(ip("192.0.2.44")));
}

#[tokio::test]
async fn a_new_forwarded_for_on_every_lambda_request_does_not_buy_a_new_budget() {
    let limiter: SharedLimiter = Arc::new(MemoryLimiter::new());
    let app = Router::new()
        .route("/api/v1/user/login", post(|| async { "ok" }))
        .route_layer(RateLimitLayer::new(limiter, LOGIN_PER_IP, KeyBy::Ip));
    let mut statuses = Vec::new();
    for forged in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let mut request = lambda_event(include_str!("events/apigw-v2-forged-xff.json"));
        request
            .headers_mut()
            .insert("x-forwarded-for", forged.parse().expect("header"));
        let response = app.clone().oneshot(request).await.expect("response");
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn login(
    State(limiter): State<SharedLimiter>,
    ClientIp(ip): ClientIp,
) -> Result<&'static str, celeriac_platform::Error> {
    enforce(&*limiter, &LOGIN_PER_IP, &LimitKey::ip(ip)).await?;
    Ok("welcome")
}

#[tokio::test]
async fn a_handler_enforcing_a_limit_answers_429_with_retry_after() {
    let limiter: SharedLimiter = Arc::new(MemoryLimiter::new());
    let app = Router::new()
        .route("/login", post(login))
        .with_state(limiter);
    let request = || {
        let mut request = Request::post("/login")
            .body(Body::empty())
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 45], 1))));
        request
    };
    for _ in 0..2 {
        let response = app.clone().oneshot(request()).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app.clone().oneshot(request()).await.expect("response");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["error"]["code"], "rate_limited");

    // Without any address (neither API Gateway nor connect info) the handler cannot key
    // the limit: a deployment fault, not a free pass.
    let bare = Request::post("/login")
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(bare).await.expect("response");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
