//! The `Authenticated` extractor and the session cookie, through an axum router as a
//! client would meet them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use celeriac_kv::{MemoryKv, RedisKv, SharedKv};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_sessions::{Authenticated, SameSite, SessionConfig, Sessions};
use http::{Request, Response, StatusCode, header};
use tower::ServiceExt;

#[derive(Clone)]
struct AppState {
    sessions: Sessions,
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

async fn me(auth: Authenticated) -> String {
    auth.user_id
}

async fn logout(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<impl IntoResponse, celeriac_platform::Error> {
    let ended = state.sessions.destroy(auth.token.as_str()).await?;
    Ok((
        [(header::SET_COOKIE, state.sessions.clear_cookie())],
        ended.to_string(),
    ))
}

fn app(sessions: Sessions) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(AppState { sessions })
}

fn memory_sessions() -> Sessions {
    Sessions::new(Arc::new(MemoryKv::new()), SessionConfig::default())
}

async fn send(app: &Router, request: http::request::Builder) -> Response<Body> {
    app.clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response")
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

async fn error_code(response: Response<Body>) -> String {
    let json: serde_json::Value = serde_json::from_str(&body(response).await).expect("json");
    json["error"]["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn a_bearer_token_or_the_cookie_authenticates() {
    let sessions = memory_sessions();
    let app = app(sessions.clone());
    let login = sessions.create("alice", None).await.expect("login");
    let token = login.token.as_str();

    for authorization in [format!("Bearer {token}"), format!("bearer {token}")] {
        let response = send(
            &app,
            Request::get("/me").header(header::AUTHORIZATION, authorization),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, "alice");
    }

    let response = send(
        &app,
        Request::get("/me").header(header::COOKIE, format!("theme=dark; session={token}")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "alice");
}

#[tokio::test]
async fn no_or_a_bad_token_is_a_json_401() {
    let sessions = memory_sessions();
    let app = app(sessions.clone());
    let unknown = "0".repeat(64);
    let requests = [
        Request::get("/me"),
        Request::get("/me").header(header::AUTHORIZATION, "Bearer"),
        Request::get("/me").header(header::AUTHORIZATION, "Bearer not-a-token"),
        Request::get("/me").header(header::AUTHORIZATION, format!("Bearer {unknown}")),
        Request::get("/me").header(header::AUTHORIZATION, "Basic YWxpY2U6cHc="),
        Request::get("/me").header(header::COOKIE, format!("session={unknown}")),
        Request::get("/me").header(header::COOKIE, "sessionx=1"),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let response = send(&app, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "request {i}");
        assert_eq!(error_code(response).await, "unauthorized", "request {i}");
    }
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let sessions = memory_sessions();
    let app = app(sessions.clone());
    let login = sessions.create("bob", None).await.expect("login");
    let cookie = format!("session={}", login.token.as_str());

    let response = send(
        &app,
        Request::post("/logout").header(header::COOKIE, &cookie),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cleared.starts_with("session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(body(response).await, "true");

    let response = send(&app, Request::get("/me").header(header::COOKIE, &cookie)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_store_that_is_down_fails_closed_with_503() {
    let config = RedisConfig {
        topology: RedisTopology::Single(
            format!("redis://{}", celeriac_testkit::dead_address()).into(),
        ),
        ca_file: None,
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    };
    let kv: SharedKv = Arc::new(
        RedisKv::open(&config)
            .await
            .expect("opens without a server"),
    );
    let sessions = Sessions::new(kv, SessionConfig::default());
    let app = app(sessions.clone());

    let response = send(
        &app,
        Request::get("/me").header(header::AUTHORIZATION, format!("Bearer {}", "ab".repeat(32))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "unavailable");

    let err = sessions.create("carol", None).await.expect_err("no store");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn the_cookie_is_http_only_secure_same_site_and_expires() {
    let sessions = memory_sessions();
    let login = sessions.create("dora", None).await.expect("login");
    let cookie = sessions.set_cookie(&login.token);
    let cookie = cookie.to_str().expect("ascii");
    let mut parts = cookie.split("; ");
    assert_eq!(
        parts.next(),
        Some(format!("session={}", login.token.as_str()).as_str())
    );
    let attributes: Vec<&str> = parts.collect();
    for expected in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=2592000",
    ] {
        assert!(attributes.contains(&expected), "{expected} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "host-only: no Domain attribute");

    let strict = Sessions::new(
        Arc::new(MemoryKv::new()),
        SessionConfig {
            cookie_name: "__Host-sid".into(),
            same_site: SameSite::Strict,
            ..SessionConfig::default()
        },
    );
    let cookie = strict.set_cookie(&login.token);
    let cookie = cookie.to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-sid="), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
}
