//! A cache whose store is down or hangs is a miss: the computed value is returned, the
//! failure is counted and logged, and no error reaches the caller.

use std::sync::Arc;
use std::time::Duration;

use celeriac_cache::{Cache, CacheConfig, CacheKey, FamilyStats};
use celeriac_kv::{RedisKv, SharedKv};
use celeriac_platform::config::{RedisConfig, RedisTopology};

async fn redis_at(address: &str) -> SharedKv {
    let config = RedisConfig {
        topology: RedisTopology::Single(format!("redis://{address}").into()),
        ca_file: None,
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    };
    Arc::new(
        RedisKv::open(&config)
            .await
            .expect("opens without a server"),
    )
}

fn cache_over(kv: SharedKv) -> Cache {
    Cache::new(
        kv,
        CacheConfig {
            timeout: Duration::from_millis(100),
            ..CacheConfig::default()
        },
    )
}

async fn compute_twice_and_write(cache: &Cache) {
    let key = CacheKey::new("course", "1").tagged("courses");
    for _ in 0..2 {
        let value = cache
            .get_or_compute(&key, Duration::from_secs(60), || async {
                Ok::<_, std::convert::Infallible>("from the database".to_owned())
            })
            .await
            .expect("computed");
        assert_eq!(value, "from the database");
    }
    assert_eq!(
        cache.stats().family("course"),
        FamilyStats {
            hits: 0,
            misses: 2,
            errors: 2,
        },
        "one failed GET per lookup: no lock or write-back is tried after it"
    );

    assert!(!cache.put(&key, &"new", Duration::from_secs(60)).await);
    assert!(!cache.invalidate(&key).await);
    assert!(!cache.invalidate_tag("courses").await);
    let stats = cache.stats();
    assert_eq!(
        stats.family("course").errors,
        4,
        "tagging and delete failed"
    );
    assert_eq!(stats.family("tag").errors, 1, "reading the tag set failed");
}

#[tokio::test]
async fn a_cache_on_a_dead_address_computes_and_counts_errors() {
    let kv = redis_at(&celeriac_testkit::dead_address()).await;
    compute_twice_and_write(&cache_over(kv)).await;
}

/// A server that accepts connections and never answers: only the cache's own timeout
/// ends each call.
#[tokio::test]
async fn a_cache_that_never_answers_times_out_into_misses() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address").to_string();
    let kv = redis_at(&address).await;
    compute_twice_and_write(&cache_over(kv)).await;
    drop(silent);
}
