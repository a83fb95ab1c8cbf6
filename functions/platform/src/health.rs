//! `GET /api/health/`: each component ok, error (with its kind: `timeout`, `refused`,
//! `auth`, `throttled`, `not_found`, `unavailable`) or not configured, with its latency.
//!
//! 200 when every configured component is ok, 503 with the same body when one is not.
//! Anyone may call it, so it never costs more than the check's interval allows: each
//! component is probed at most once per interval whatever the traffic (see
//! [`HealthCheck`]), and the adapters' error text goes to the log, not the answer. Probes
//! run concurrently under one timeout, so a hanging dependency cannot hold the answer past
//! it, and nothing here can turn into a 500.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use celeriac_platform::health::HealthCheck;
use http::StatusCode;

/// Path of the health endpoint (the seed's, trailing slash included).
pub const PATH: &str = "/api/health/";

/// The health function's routes.
pub fn router(check: HealthCheck) -> Router {
    Router::new().route(PATH, get(health)).with_state(check)
}

async fn health(State(check): State<HealthCheck>) -> Response {
    let report = check.report().await;
    let status = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use axum::body::Body;
    use celeriac_platform::config::HttpConfig;
    use celeriac_platform::health::{Embedded, Probe, ProbeError};
    use tower::ServiceExt;

    use super::*;

    fn event(name: &str) -> http::Request<Body> {
        let path = format!(
            "{}/../../events/health/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let json = std::fs::read_to_string(&path).expect("events/ sample");
        lambda_http::request::from_str(&json)
            .expect("API Gateway event")
            .map(|b| Body::from(b.to_vec()))
    }

    async fn call(check: HealthCheck, name: &str) -> (StatusCode, serde_json::Value) {
        let app = celeriac_platform::http::app(router(check), &HttpConfig::default());
        let response = app.oneshot(event(name)).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[derive(Debug)]
    struct Refused;
    #[async_trait]
    impl Probe for Refused {
        fn adapter(&self) -> &'static str {
            "redis"
        }
        async fn check(&self) -> Result<(), ProbeError> {
            Err(ProbeError::from_message(
                "Connection refused (os error 111) to redis://10.0.3.7:6379",
            ))
        }
    }

    fn embedded(name: &'static str) -> Option<Arc<dyn Probe>> {
        Some(Arc::new(Embedded(name)))
    }

    #[tokio::test]
    async fn healthy_components_answer_200_from_the_sample_events() {
        for sample in ["get", "get-staged"] {
            let check = HealthCheck::new(Duration::from_secs(1))
                .component("database", None)
                .component("redis", embedded("memory"))
                .component("queue", embedded("inprocess"))
                .component("llm", embedded("local"));
            let (status, body) = call(check, sample).await;
            assert_eq!(status, StatusCode::OK, "{sample}: {body}");
            assert_eq!(body["status"], "ok");
            assert_eq!(body["components"]["database"]["status"], "not_configured");
            assert_eq!(body["components"]["redis"]["status"], "ok");
            assert_eq!(body["components"]["redis"]["adapter"], "memory");
            assert!(body["components"]["redis"]["latency_ms"].is_number());
        }
    }

    #[tokio::test]
    async fn one_component_down_is_503_with_the_kind_and_no_text() {
        let check = HealthCheck::new(Duration::from_secs(1))
            .component("database", embedded("memory"))
            .component("redis", Some(Arc::new(Refused)));
        let (status, body) = call(check, "get").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["components"]["redis"]["status"], "error");
        assert_eq!(body["components"]["redis"]["error"], "refused");
        assert_eq!(body["components"]["database"]["status"], "ok");
        let text = body.to_string();
        assert!(
            !text.contains("os error") && !text.contains("10.0.3.7"),
            "{text}"
        );
    }
}
