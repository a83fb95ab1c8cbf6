//! `X-Cache-Hits` / `X-Cache-Misses`: each response counts the lookups of its own request.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use celeriac_cache::{
    CACHE_HITS_HEADER, CACHE_MISSES_HEADER, Cache, CacheConfig, CacheHeadersLayer, CacheKey,
};
use celeriac_kv::MemoryKv;
use http::{Request, Response};
use tower::ServiceExt;

/// Reads the topic and the recommendations of a user, through the cache.
async fn user_page(State(cache): State<Cache>, Path(user): Path<String>) -> String {
    let ttl = Duration::from_secs(60);
    let topic = cache
        .get_or_compute(&CacheKey::new("user_topic", user.clone()), ttl, || async {
            Ok::<_, std::convert::Infallible>("sleep".to_owned())
        })
        .await
        .expect("infallible");
    let again = cache
        .get_or_compute(&CacheKey::new("user_topic", user.clone()), ttl, || async {
            Ok::<_, std::convert::Infallible>("not used".to_owned())
        })
        .await
        .expect("infallible");
    let recommendations = cache
        .get_or_compute(&CacheKey::new("recommendations", user), ttl, || async {
            Ok::<_, std::convert::Infallible>(vec!["breathing".to_owned()])
        })
        .await
        .expect("infallible");
    format!("{topic} {again} {}", recommendations.join(","))
}

fn app(cache: Cache) -> Router {
    Router::new()
        .route("/user/{id}", get(user_page))
        .route("/plain", get(|| async { "no cache here" }))
        .with_state(cache)
        .layer(CacheHeadersLayer)
}

fn counts(response: &Response<Body>) -> (String, String) {
    let header = |name| response.headers()[name].to_str().expect("ascii").to_owned();
    (header(CACHE_HITS_HEADER), header(CACHE_MISSES_HEADER))
}

async fn call(app: Router, path: &str) -> Response<Body> {
    app.oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response")
}

#[tokio::test]
async fn each_response_counts_its_own_hits_and_misses() {
    let cache = Cache::new(Arc::new(MemoryKv::new()), CacheConfig::default());
    let app = app(cache.clone());

    let first = call(app.clone(), "/user/1").await;
    assert_eq!(first.status(), 200);
    assert_eq!(counts(&first), ("1".into(), "2".into()));

    let second = call(app.clone(), "/user/1").await;
    assert_eq!(counts(&second), ("3".into(), "0".into()));

    let plain = call(app, "/plain").await;
    assert_eq!(counts(&plain), ("0".into(), "0".into()));

    let total = cache.stats().total();
    assert_eq!((total.hits, total.misses), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_keep_their_counts_apart() {
    let cache = Cache::new(Arc::new(MemoryKv::new()), CacheConfig::default());
    let app = app(cache);
    call(app.clone(), "/user/warm").await;

    let requests = (0..20).map(|i| {
        let app = app.clone();
        // Even ones read the warm user (all hits), odd ones a new user each (two misses).
        let path = if i % 2 == 0 {
            "/user/warm".to_owned()
        } else {
            format!("/user/cold-{i}")
        };
        tokio::spawn(async move { (i, call(app, &path).await) })
    });
    for joined in futures::future::join_all(requests).await {
        let (i, response) = joined.expect("request task");
        let expected = if i % 2 == 0 { ("3", "0") } else { ("1", "2") };
        assert_eq!(
            counts(&response),
            (expected.0.to_owned(), expected.1.to_owned()),
            "request {i}"
        );
    }
}
