//! A cached endpoint whose Redis is killed mid-test keeps answering: the lookups become
//! misses (counted as errors), the handler computes, and the response is still 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use celeriac_cache::{
    CACHE_HITS_HEADER, CACHE_MISSES_HEADER, Cache, CacheConfig, CacheHeadersLayer, CacheKey,
};
use celeriac_kv::RedisKv;
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_testkit::{OwnRedis, free_port, standin};
use http::Request;
use tower::ServiceExt;

#[derive(Clone)]
struct Catalogue {
    cache: Cache,
    computed: Arc<AtomicUsize>,
}

async fn course(State(app): State<Catalogue>, Path(id): Path<u32>) -> String {
    let computed = app.computed.clone();
    app.cache
        .get_or_compute(
            &CacheKey::new("course", id.to_string()),
            Duration::from_secs(600),
            || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(format!("course {id}"))
            },
        )
        .await
        .expect("infallible")
}

async fn get_course(app: &Router, id: u32) -> (u16, String, String, String) {
    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/courses/{id}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let header = |name| response.headers()[name].to_str().expect("ascii").to_owned();
    let (hits, misses) = (header(CACHE_HITS_HEADER), header(CACHE_MISSES_HEADER));
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .expect("body");
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        hits,
        misses,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_endpoint_keeps_answering_after_its_redis_is_killed() {
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-cache-killed-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut redis = OwnRedis::start(&bin, free_port(), &dir);
    let kv = RedisKv::open(&RedisConfig {
        topology: RedisTopology::Single(format!("redis://127.0.0.1:{}", redis.port).into()),
        ca_file: None,
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    })
    .await
    .expect("open");
    let cache = Cache::new(Arc::new(kv), CacheConfig::default());
    let state = Catalogue {
        cache: cache.clone(),
        computed: Arc::default(),
    };
    let app = Router::new()
        .route("/courses/{id}", get(course))
        .with_state(state.clone())
        .layer(CacheHeadersLayer);

    assert_eq!(
        get_course(&app, 7).await,
        (200, "course 7".into(), "0".into(), "1".into())
    );
    assert_eq!(
        get_course(&app, 7).await,
        (200, "course 7".into(), "1".into(), "0".into())
    );
    assert_eq!(state.computed.load(Ordering::SeqCst), 1);

    redis.kill();
    for _ in 0..3 {
        let (status, body, hits, misses) = get_course(&app, 7).await;
        assert_eq!((status, body.as_str()), (200, "course 7"), "still answers");
        assert_eq!(
            (hits.as_str(), misses.as_str()),
            ("0", "1"),
            "a miss, not an error"
        );
    }
    assert_eq!(
        state.computed.load(Ordering::SeqCst),
        4,
        "computed while Redis is gone"
    );
    let course = cache.stats().family("course");
    assert!(course.errors >= 3, "{course:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
