//! `X-Cache-Hits` and `X-Cache-Misses` on every response: how many cache lookups the
//! request was served by, and how many it had to compute.
//!
//! [`CacheHeadersLayer`] gives each request a tally in a tokio task-local; every
//! [`crate::Cache`] lookup made while the request's future runs adds to it, with no
//! plumbing through handlers. Work the handler moves to another task (`tokio::spawn`)
//! runs outside the tally and is not counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

/// Response header with the number of cache hits while serving the request.
pub const CACHE_HITS_HEADER: &str = "x-cache-hits";
/// Response header with the number of cache misses while serving the request.
pub const CACHE_MISSES_HEADER: &str = "x-cache-misses";

#[derive(Debug, Default)]
struct Tally {
    hits: AtomicU64,
    misses: AtomicU64,
}

tokio::task_local! {
    static REQUEST_TALLY: Arc<Tally>;
}

/// Adds a hit (`true`) or a miss to the current request's tally, if there is one.
pub(crate) fn tally(hit: bool) {
    let _outside_a_request = REQUEST_TALLY.try_with(|tally| {
        let counter = if hit { &tally.hits } else { &tally.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    });
}

/// The tower layer behind `X-Cache-Hits` / `X-Cache-Misses`; wrap the router with it
/// (`router.layer(CacheHeadersLayer)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheHeadersLayer;

impl<S> Layer<S> for CacheHeadersLayer {
    type Service = CacheHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheHeaders { inner }
    }
}

/// The service [`CacheHeadersLayer`] builds.
#[derive(Debug, Clone)]
pub struct CacheHeaders<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheHeaders<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let tally = Arc::new(Tally::default());
        // Some services do work in `call` itself, so it runs inside the tally too.
        let response = REQUEST_TALLY.sync_scope(tally.clone(), || self.inner.call(request));
        Box::pin(async move {
            let mut response = REQUEST_TALLY.scope(tally.clone(), response).await?;
            let headers = response.headers_mut();
            headers.insert(
                CACHE_HITS_HEADER,
                HeaderValue::from(tally.hits.load(Ordering::Relaxed)),
            );
            headers.insert(
                CACHE_MISSES_HEADER,
                HeaderValue::from(tally.misses.load(Ordering::Relaxed)),
            );
            Ok(response)
        })
    }
}
