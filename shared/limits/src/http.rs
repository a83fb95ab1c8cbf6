//! The HTTP side of rate limits: [`RateLimitLayer`] for routes, the `RateLimit-*` headers,
//! and [`client_ip`], the caller's address as the platform (not the client) reports it.
//!
//! ```no_run
//! # use std::sync::Arc; use std::time::Duration;
//! # use axum::{Router, routing::post};
//! use celeriac_limits::{FailurePolicy, KeyBy, Limit, MemoryLimiter, RateLimitLayer, SharedLimiter};
//!
//! const API_PER_IP: Limit =
//!     Limit::gcra("api-ip", 100, Duration::from_secs(3600), FailurePolicy::Open);
//! let limiter: SharedLimiter = Arc::new(MemoryLimiter::new());
//! let routes: Router = Router::new()
//!     .route("/api/v1/generate", post(|| async { "ok" }))
//!     .route_layer(RateLimitLayer::new(limiter, API_PER_IP, KeyBy::Ip));
//! ```

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::request::Parts;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use tower::{Layer, Service};

use crate::enforcement::{on_failure, whole_seconds};
use crate::{Admission, Decision, Limit, LimitError, LimitKey, SharedLimiter, enforce};

/// `RateLimit-Limit`: the most requests the key can be granted at once.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests left right now.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds (rounded up) until the full limit is available again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl Decision {
    /// Sets the `RateLimit-*` headers. When a response already carries them (several
    /// limits on one route), the limit with fewer requests remaining keeps its headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let existing = headers
            .get(&RATELIMIT_REMAINING)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        if existing.is_some_and(|remaining| remaining <= self.remaining) {
            return;
        }
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(
            RATELIMIT_RESET,
            HeaderValue::from(whole_seconds(self.reset_after)),
        );
    }
}

/// The caller's address: on Lambda, the source IP API Gateway saw (HTTP API v2
/// `requestContext.http.sourceIp`, REST `requestContext.identity.sourceIp`); under the dev
/// server, the peer of the TCP connection (`ConnectInfo<SocketAddr>`). Never a header:
/// `X-Forwarded-For` and friends are whatever the client chose to send.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    ip_from(&parts.extensions)
}

fn ip_from(extensions: &Extensions) -> Option<IpAddr> {
    use lambda_http::request::RequestContext;
    if let Some(context) = extensions.get::<RequestContext>() {
        let source = match context {
            RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
            RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.as_deref(),
            _ => None,
        };
        // Behind API Gateway there is no other trustworthy source: no fallback.
        return source.and_then(|ip| ip.trim().parse().ok());
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The caller's address as a handler argument (see [`client_ip`]). A request without one
/// is a deployment fault (a server started without connect info), answered with 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = celeriac_platform::Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        client_ip(parts).map(ClientIp).ok_or_else(|| {
            celeriac_platform::Error::internal(
                "no client address: not behind API Gateway and served without connect info",
            )
        })
    }
}

/// Makes the key of a request for [`KeyBy::Custom`].
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<LimitKey> + Send + Sync>;

/// Whose requests a [`RateLimitLayer`] counts.
#[derive(Clone)]
pub enum KeyBy {
    /// The client address ([`client_ip`]).
    Ip,
    /// The client address and the matched route, so each route has its own budget.
    IpAndRoute,
    /// Anything else, e.g. the user a session layer put in the extensions. `None` means no
    /// key can be made for this request, which counts as a failure of the limiter (the
    /// limit's policy decides), so a layer ordering mistake cannot silently disable a
    /// fail-closed limit.
    Custom(KeyFn),
}

impl std::fmt::Debug for KeyBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ip => "KeyBy::Ip",
            Self::IpAndRoute => "KeyBy::IpAndRoute",
            Self::Custom(_) => "KeyBy::Custom",
        })
    }
}

impl KeyBy {
    /// [`KeyBy::Custom`] from a closure.
    pub fn custom(key: impl Fn(&Parts) -> Option<LimitKey> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(key))
    }

    fn key(&self, parts: &Parts) -> Option<LimitKey> {
        match self {
            Self::Ip => client_ip(parts).map(LimitKey::ip),
            Self::IpAndRoute => {
                // The pattern, not the path: `/tasks/1` and `/tasks/2` share a budget, and
                // a client cannot mint fresh budgets by varying the path.
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map_or("(unmatched)", MatchedPath::as_str);
                client_ip(parts).map(|ip| LimitKey::ip(ip).and_route(route))
            }
            Self::Custom(key) => key(parts),
        }
    }
}

struct Guard {
    limiter: SharedLimiter,
    limit: Limit,
    key_by: KeyBy,
}

/// A tower layer applying one limit to every request of the routes it wraps. Admitted
/// responses get the `RateLimit-*` headers; refused requests get 429 (with `Retry-After`
/// and the same headers) or, when the limiter fails and the limit fails closed, 503.
/// Use it with `Router::route_layer` so the matched route is known.
#[derive(Clone)]
pub struct RateLimitLayer {
    guard: Arc<Guard>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limit", &self.guard.limit)
            .field("key_by", &self.guard.key_by)
            .finish()
    }
}

impl RateLimitLayer {
    /// Applies `limit`, keyed by `key_by`, through `limiter`.
    pub fn new(limiter: SharedLimiter, limit: Limit, key_by: KeyBy) -> Self {
        Self {
            guard: Arc::new(Guard {
                limiter,
                limit,
                key_by,
            }),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a route.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> std::fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService")
            .field("limit", &self.guard.limit)
            .finish()
    }
}

impl<S> Service<Request> for RateLimitService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready serves this request; the fresh one stays.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let guard = self.guard.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let admission = match guard.key_by.key(&parts) {
                Some(key) => enforce(&*guard.limiter, &guard.limit, &key).await,
                None => on_failure(
                    guard.limiter.adapter(),
                    &guard.limit,
                    LimitError::Unavailable("no limit key for this request".into()),
                ),
            };
            match admission {
                Err(refusal) => Ok(refusal.into_response()),
                Ok(admission) => {
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    if let Admission::Counted(decision) = admission {
                        decision.write_headers(response.headers_mut());
                    }
                    Ok(response)
                }
            }
        })
    }
}
