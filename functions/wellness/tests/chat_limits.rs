//! `POST /chat` costs a model call, so a user is limited: the 21st message in a minute is
//! refused with 429 and `Retry-After`, and the reply is not written.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use celeriac_kv::{MemoryKv, SharedKv};
use celeriac_limits::{MemoryLimiter, SharedLimiter};
use celeriac_llm::LocalEngine;
use celeriac_wellness::WellnessBackend;
use celeriac_wellness::http::{self, WellnessApi};
use tower::ServiceExt;

#[tokio::test]
async fn the_21st_message_in_a_minute_is_refused() {
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let limiter: SharedLimiter = Arc::new(MemoryLimiter::new());
    let api = WellnessApi::new(
        WellnessBackend::new(kv, Arc::new(LocalEngine::new())),
        None,
        Some(limiter),
    );
    let mut tokens = std::collections::HashMap::new();
    for user in ["7", "8"] {
        let created = api.sessions.create(user, None).await.expect("session");
        tokens.insert(user, created.token.as_str().to_owned());
    }
    let app = celeriac_platform::http::app(http::chat(api), &Default::default());
    let send = |user: &str| {
        Request::post("/chat")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", tokens[user]))
            .body(Body::from(r#"{"message": "I can't sleep"}"#))
            .expect("request")
    };
    for n in 1..=20 {
        let response = app.clone().oneshot(send("7")).await.expect("response");
        assert_eq!(response.status(), 200, "message {n}");
    }
    let refused = app.clone().oneshot(send("7")).await.expect("response");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
        .await
        .expect("body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body.get("reply").is_none());
    let other = app.oneshot(send("8")).await.expect("response");
    assert_eq!(
        other.status(),
        200,
        "another user has a budget of their own"
    );
}
