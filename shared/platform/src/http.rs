//! The HTTP kit: one way to turn a function's axum `Router` into a Lambda or a local server.
//!
//! [`app`] wraps a router with the layers every endpoint shares: the API Gateway stage
//! prefix is stripped before routing, every response carries `X-Request-Id` and
//! `X-Response-Time`, bodies over the limit get 413, unknown paths get a JSON 404, and each
//! request runs inside one span. [`run_lambda`] hands the result to `lambda_http`; the dev
//! runner hands the same result to `axum::serve`.

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use tower::ServiceBuilder;
use tracing::Instrument;

use crate::config::HttpConfig;
use crate::error::Error;

/// The id of the request being served: API Gateway's, the caller's `X-Request-Id`, or new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Header that carries [`RequestId`] both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header with the time the server spent on the request.
pub const RESPONSE_TIME_HEADER: &str = "x-response-time";

/// Wraps `routes` with the shared layers. Merge every router first, then call this once.
pub fn app(routes: Router, config: &HttpConfig) -> Router {
    let routes = routes.fallback(|| async { Error::NotFound("no such endpoint".into()) });
    // Stripping the stage must happen before routing, so it wraps the router as a service
    // rather than being one of its (post-routing) layers.
    let staged = ServiceBuilder::new()
        .map_request(strip_stage_prefix)
        .service(routes);
    Router::new()
        .fallback_service(staged)
        .layer(middleware::from_fn_with_state(
            config.body_limit_bytes,
            limit_body,
        ))
        .layer(middleware::from_fn(time_response))
        .layer(middleware::from_fn(identify_request))
}

/// Serves `app` as a Lambda function behind API Gateway until the runtime stops it.
pub async fn run_lambda(app: Router) -> Result<(), lambda_http::Error> {
    lambda_http::run(app).await
}

/// With a named API Gateway stage, `lambda_http` puts `/{stage}` in front of the path;
/// routes are declared without it, so it is taken off again here.
fn strip_stage_prefix(mut request: Request) -> Request {
    let Some(stage) = stage_of(&request) else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

fn stage_of(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    let stage = match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.clone(),
        _ => None,
    }?;
    (stage != "$default" && !stage.is_empty()).then_some(stage)
}

fn lambda_request_id(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

fn caller_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    // A caller's id ends up in logs and headers: accept only short, plain tokens.
    let plain = value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (plain && !value.is_empty()).then(|| value.to_owned())
}

async fn identify_request(mut request: Request, next: Next) -> Response {
    let id = lambda_request_id(&request)
        .or_else(|| caller_request_id(&request))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        status = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    async move {
        let mut response = next.run(request).await;
        tracing::Span::current().record("status", response.status().as_u16());
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
    .instrument(span)
    .await
}

async fn time_response(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let value = format!("{:.3}ms", elapsed.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(RESPONSE_TIME_HEADER, value);
    }
    tracing::info!(
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        status = response.status().as_u16(),
        "served"
    );
    response
}

async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Error::PayloadTooLarge { limit }.into_response();
    }
    // Lambda delivers bodies whole and chunked uploads declare no length, so the body is
    // read here with the limit; handlers then never see an oversized body.
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => Error::PayloadTooLarge { limit }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn test_app() -> Router {
        let routes = Router::new()
            .route("/api/health/", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }));
        app(
            routes,
            &HttpConfig {
                body_limit_bytes: 16,
            },
        )
    }

    #[tokio::test]
    async fn every_response_has_request_id_and_response_time() {
        let response = test_app()
            .oneshot(
                Request::get("/api/health/")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key(REQUEST_ID_HEADER));
        let time = response.headers()[RESPONSE_TIME_HEADER]
            .to_str()
            .expect("ascii");
        assert!(time.ends_with("ms"), "{time}");
    }

    #[tokio::test]
    async fn a_plain_caller_request_id_is_kept_and_a_hostile_one_replaced() {
        let response = test_app()
            .oneshot(
                Request::get("/api/health/")
                    .header(REQUEST_ID_HEADER, "abc-123")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "abc-123");

        let response = test_app()
            .oneshot(
                Request::get("/api/health/")
                    .header(REQUEST_ID_HEADER, "evil\"}{injected")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_ne!(response.headers()[REQUEST_ID_HEADER], "evil\"}{injected");
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404() {
        let response = test_app()
            .oneshot(Request::get("/nope").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status(), 404);
        assert!(response.headers().contains_key(RESPONSE_TIME_HEADER));
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn oversized_bodies_get_413_with_or_without_a_length() {
        let response = test_app()
            .oneshot(
                Request::post("/echo")
                    .header("content-length", "17")
                    .body(Body::from("x".repeat(17)))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 413);

        let response = test_app()
            .oneshot(
                Request::post("/echo")
                    .body(Body::from("y".repeat(40)))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 413);

        let response = test_app()
            .oneshot(
                Request::post("/echo")
                    .body(Body::from("small"))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn a_named_stage_is_stripped_before_routing() {
        let event = include_str!("../tests/apigw-v2-staged.json");
        let request = lambda_http::request::from_str(event).expect("event");
        let request = request.map(|b| Body::from(b.to_vec()));
        assert!(
            request.uri().path().starts_with("/prod/"),
            "{}",
            request.uri()
        );
        let response = test_app().oneshot(request).await.expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "staged-req-1");
    }
}
