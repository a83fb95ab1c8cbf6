//! One conformance suite for the cache, run over every key-value adapter: memory, Redis
//! single node, the 3-node cluster and the TLS node (stand-ins from `infra/standins`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use celeriac_cache::{Cache, CacheConfig, CacheKey, FamilyStats};
use celeriac_kv::{KeyValue, MemoryKv, RedisKv, SharedKv};
use celeriac_platform::config::RedisConfig;
use celeriac_testkit::unique_prefix;
use serde::{Deserialize, Serialize};

const HOUR: Duration = Duration::from_secs(3600);

async fn open_redis(config: Option<RedisConfig>) -> Option<SharedKv> {
    let kv = RedisKv::open(&config?).await.expect("valid redis config");
    kv.ping().await.expect("stand-in redis answers PING");
    Some(Arc::new(kv))
}

/// The stand-ins are shared with other test runs on 2 cores: a generous timeout keeps a
/// busy moment from turning into a miss (the timeout itself is tested in store_failures).
fn config(prefix: &str) -> CacheConfig {
    CacheConfig {
        prefix: prefix.to_owned(),
        version: "v1".into(),
        timeout: Duration::from_secs(2),
        stale_for: Duration::from_secs(30),
        refresh_lock: Duration::from_secs(10),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Course {
    id: u32,
    title: String,
    chapters: Vec<String>,
}

fn course(id: u32, title: &str) -> Course {
    Course {
        id,
        title: title.to_owned(),
        chapters: vec!["intro".into(), "ünïcode".into()],
    }
}

/// A compute function that counts its calls.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    async fn course(&self, id: u32, title: &str) -> Result<Course, std::convert::Infallible> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(course(id, title))
    }

    /// Slow enough that every concurrent caller arrives while it runs.
    async fn slow(&self, value: &str) -> Result<String, std::convert::Infallible> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(value.to_owned())
    }
}

async fn cache_aside(kv: SharedKv, p: String) {
    let cache = Cache::new(kv, config(&p));
    let calls = Calls::default();
    let key = CacheKey::new("course", "42");

    let first = cache
        .get_or_compute(&key, HOUR, || calls.course(42, "Rust"))
        .await
        .expect("computed");
    assert_eq!(first, course(42, "Rust"));
    let second = cache
        .get_or_compute(&key, HOUR, || calls.course(42, "changed"))
        .await
        .expect("cached");
    assert_eq!(second, course(42, "Rust"), "served from the cache");
    assert_eq!(calls.count(), 1);

    // Another id of the same family is its own entry.
    cache
        .get_or_compute(&CacheKey::new("course", "43"), HOUR, || {
            calls.course(43, "Go")
        })
        .await
        .expect("computed");
    assert_eq!(calls.count(), 2);
    assert_eq!(
        cache.stats().family("course"),
        FamilyStats {
            hits: 1,
            misses: 2,
            errors: 0
        }
    );
}

async fn keys_follow_the_configured_layout(kv: SharedKv, p: String) {
    let mut settings = config(&p);
    settings.version = "1".into();
    let cache = Cache::new(kv.clone(), settings);
    let key = CacheKey::new("user_topic", "7");
    assert!(cache.put(&key, &"sleep", HOUR).await);
    assert!(
        kv.get(&format!("{p}:1:user_topic:7"))
            .await
            .expect("get")
            .is_some(),
        "entries live at prefix:version:family:id"
    );

    // A new version does not see the old entries.
    let mut bumped = config(&p);
    bumped.version = "2".into();
    let calls = Calls::default();
    let topic = Cache::new(kv, bumped)
        .get_or_compute(&key, HOUR, || async {
            calls.0.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>("stress".to_owned())
        })
        .await
        .expect("computed");
    assert_eq!(topic, "stress");
    assert_eq!(calls.count(), 1);
}

async fn write_through_and_invalidate(kv: SharedKv, p: String) {
    let cache = Cache::new(kv, config(&p));
    let calls = Calls::default();
    let key = CacheKey::new("user", "9");

    assert!(cache.put(&key, &course(9, "profile v1"), HOUR).await);
    let read = cache
        .get_or_compute(&key, HOUR, || calls.course(9, "from the database"))
        .await
        .expect("cached");
    assert_eq!(read, course(9, "profile v1"));
    assert!(cache.put(&key, &course(9, "profile v2"), HOUR).await);
    let read = cache
        .get_or_compute(&key, HOUR, || calls.course(9, "from the database"))
        .await
        .expect("cached");
    assert_eq!(
        read,
        course(9, "profile v2"),
        "the write replaced the entry"
    );
    assert_eq!(calls.count(), 0);

    assert!(cache.invalidate(&key).await);
    let read = cache
        .get_or_compute(&key, HOUR, || calls.course(9, "from the database"))
        .await
        .expect("recomputed");
    assert_eq!(read, course(9, "from the database"));
    assert_eq!(calls.count(), 1);
    assert!(
        cache
            .invalidate(&CacheKey::new("user", "never-stored"))
            .await,
        "invalidating nothing is fine"
    );
}

async fn ttl_expiry(kv: SharedKv, p: String) {
    let mut settings = config(&p);
    // Long enough that the entry is surely still there when the test looks right after
    // writing it, on a busy machine too (at 100 ms, a stall between the two failed it).
    settings.stale_for = Duration::from_secs(1);
    let cache = Cache::new(kv.clone(), settings);
    let calls = Calls::default();

    // Past its TTL an entry is recomputed by the next reader.
    let key = CacheKey::new("quote", "calm:2024-05-01");
    assert!(cache.put(&key, &course(1, "old"), Duration::ZERO).await);
    let read = cache
        .get_or_compute(&key, HOUR, || calls.course(1, "new"))
        .await
        .expect("recomputed");
    assert_eq!(read, course(1, "new"));
    assert_eq!(calls.count(), 1);

    // Past TTL and stale period, it is gone from the store.
    let short = CacheKey::new("quote", "short");
    assert!(
        cache
            .put(&short, &course(2, "short"), Duration::from_millis(50))
            .await
    );
    let entry = format!("{p}:v1:quote:short");
    assert!(kv.get(&entry).await.expect("get").is_some());
    let left = kv.ttl(&entry).await.expect("ttl").expect("entries expire");
    assert!(left <= Duration::from_millis(1050), "{left:?}");
    let mut gone = false;
    for _ in 0..100 {
        if kv.get(&entry).await.expect("get").is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone,
        "the entry outlived its TTL and stale period by seconds"
    );
}

/// 50 callers, each with a cache of its own (as 50 Lambda environments would be), miss
/// the same cold key at once.
async fn stampede_on_a_cold_key(kv: SharedKv, p: String) {
    let calls = Calls::default();
    let key = CacheKey::new("article", "sleep:2024-05-01");
    let callers = (0..50).map(|_| {
        let cache = Cache::new(kv.clone(), config(&p));
        let (calls, key) = (calls.clone(), key.clone());
        async move {
            cache
                .get_or_compute(&key, HOUR, || calls.slow("article body"))
                .await
        }
    });
    let values = futures::future::join_all(callers).await;
    assert!(values.iter().all(|v| v.as_deref() == Ok("article body")));
    let computed = calls.count();
    assert!(computed <= 3, "computed {computed} times for 50 callers");
}

/// A hot key whose TTL has passed: one caller refreshes while the rest are served the
/// stale value without waiting. The refresh holds until every other caller has returned,
/// so a caller that waited for it would keep it from finishing (and fail the test).
async fn stampede_on_an_expired_key(kv: SharedKv, p: String) {
    let seed = Cache::new(kv.clone(), config(&p));
    let key = CacheKey::new("daily_content", "2024-05-01");
    assert!(
        seed.put(&key, &"yesterday".to_owned(), Duration::ZERO)
            .await
    );

    const CALLERS: usize = 50;
    let calls = Calls::default();
    let returned = Arc::new(AtomicUsize::new(0));
    let refresh = || {
        let (calls, returned) = (calls.clone(), returned.clone());
        async move {
            let refreshers = calls.0.fetch_add(1, Ordering::SeqCst) + 1;
            let give_up = std::time::Instant::now() + Duration::from_secs(10);
            while returned.load(Ordering::SeqCst) + refreshers < CALLERS
                && std::time::Instant::now() < give_up
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let others_first = returned.load(Ordering::SeqCst) + refreshers >= CALLERS;
            let value = if others_first {
                "today"
            } else {
                "others waited"
            };
            Ok::<_, std::convert::Infallible>(value.to_owned())
        }
    };
    let callers = (0..CALLERS).map(|_| {
        let cache = Cache::new(kv.clone(), config(&p));
        let (key, returned, refresh) = (key.clone(), returned.clone(), refresh);
        async move {
            let value = cache
                .get_or_compute(&key, HOUR, refresh)
                .await
                .expect("infallible");
            returned.fetch_add(1, Ordering::SeqCst);
            (value, cache.stats().family("daily_content"))
        }
    });
    let results = futures::future::join_all(callers).await;
    let computed = calls.count();
    assert!(
        computed <= 3,
        "computed {computed} times for {CALLERS} callers"
    );
    let served = |value: &str| results.iter().filter(|(v, _)| *v == value).count();
    assert_eq!(served("today"), computed, "refreshers return the new value");
    assert_eq!(
        served("yesterday"),
        CALLERS - computed,
        "everyone else got the stale value at once"
    );
    let misses: u64 = results.iter().map(|(_, s)| s.misses).sum();
    assert_eq!(
        misses, computed as u64,
        "every compute is counted as a miss"
    );

    let after = seed
        .get_or_compute(&key, HOUR, || calls.slow("tomorrow"))
        .await
        .expect("cached");
    assert_eq!(after, "today", "the refresh was stored");
}

async fn get_reads_only_fresh_entries(kv: SharedKv, p: String) {
    let cache = Cache::new(kv, config(&p));
    let key = CacheKey::new("user_topic", "42");
    assert_eq!(cache.get::<String>(&key).await, None, "nothing written yet");
    assert!(cache.put(&key, &"стресс".to_owned(), HOUR).await);
    assert_eq!(cache.get::<String>(&key).await.as_deref(), Some("стресс"));
    let stats = cache.stats().family("user_topic");
    assert_eq!((stats.hits, stats.misses), (1, 1));

    let short = CacheKey::new("user_topic", "43");
    assert!(
        cache
            .put(&short, &"sleep".to_owned(), Duration::from_millis(50))
            .await
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        cache.get::<String>(&short).await,
        None,
        "past its TTL an entry is not served by get, even while it is kept for refreshes"
    );
}

async fn a_failed_compute_is_returned_and_not_stored(kv: SharedKv, p: String) {
    let cache = Cache::new(kv.clone(), config(&p));
    let key = CacheKey::new("generation", "g-1");
    let err = cache
        .get_or_compute(&key, HOUR, || async {
            Err::<String, _>("model unavailable")
        })
        .await
        .expect_err("the compute failed");
    assert_eq!(err, "model unavailable");
    assert_eq!(
        kv.get(&format!("{p}:v1:generation:g-1"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        kv.get(&format!("{p}:v1:lock:generation:g-1"))
            .await
            .expect("get"),
        None,
        "the refresh lock was released, so the next caller need not wait for it"
    );
    let value = cache
        .get_or_compute(&key, HOUR, || async { Ok::<_, &str>("done".to_owned()) })
        .await
        .expect("second try");
    assert_eq!(value, "done");
}

async fn tag_invalidation(kv: SharedKv, p: String) {
    let cache = Cache::new(kv.clone(), config(&p));
    let calls = Calls::default();
    let course_1 = CacheKey::new("course", "1").tagged("course:1");
    let modules_1 = CacheKey::new("course", "1:modules").tagged("course:1");
    let list = CacheKey::new("api", "courses?page=1").tagged("courses");
    let featured = CacheKey::new("api", "featured")
        .tagged("courses")
        .tagged("course:1");
    let course_2 = CacheKey::new("course", "2").tagged("course:2");
    let all = [&course_1, &modules_1, &list, &featured, &course_2];

    for key in all {
        cache
            .get_or_compute(key, HOUR, || calls.course(0, "v1"))
            .await
            .expect("filled");
    }
    assert_eq!(calls.count(), 5);

    assert!(cache.invalidate_tag("course:1").await);
    for key in all {
        cache
            .get_or_compute(key, HOUR, || calls.course(0, "v2"))
            .await
            .expect("read");
    }
    assert_eq!(
        calls.count(),
        8,
        "exactly the three entries tagged course:1 were recomputed"
    );
    let list_now = cache
        .get_or_compute(&list, HOUR, || calls.course(0, "v3"))
        .await
        .expect("read");
    assert_eq!(list_now.title, "v1", "an untouched tag kept its entry");

    assert!(cache.invalidate_tag("courses").await);
    assert!(
        kv.set_members(&format!("{p}:v1:tag:courses"))
            .await
            .expect("smembers")
            .is_empty(),
        "the tag set was emptied"
    );
    let list_now = cache
        .get_or_compute(&list, HOUR, || calls.course(0, "v4"))
        .await
        .expect("read");
    assert_eq!(list_now.title, "v4");
    assert!(cache.invalidate_tag("never-used").await);
}

async fn an_undecodable_entry_is_a_miss(kv: SharedKv, p: String) {
    let cache = Cache::new(kv.clone(), config(&p));
    let calls = Calls::default();
    let key = CacheKey::new("stats", "summary");
    kv.set(
        &format!("{p}:v1:stats:summary"),
        b"\xff not json",
        Some(HOUR),
    )
    .await
    .expect("set");
    let value = cache
        .get_or_compute(&key, HOUR, || calls.course(5, "fresh"))
        .await
        .expect("computed");
    assert_eq!(value, course(5, "fresh"));
    assert_eq!(cache.stats().family("stats").errors, 1);
    cache
        .get_or_compute(&key, HOUR, || calls.course(5, "again"))
        .await
        .expect("cached");
    assert_eq!(calls.count(), 1, "the bad entry was overwritten");
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedKv> { $open }
            conformance!(@cases cache_aside, keys_follow_the_configured_layout,
                write_through_and_invalidate, ttl_expiry, stampede_on_a_cold_key,
                stampede_on_an_expired_key, a_failed_compute_is_returned_and_not_stored, get_reads_only_fresh_entries,
                tag_invalidation, an_undecodable_entry_is_a_miss);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(kv) = store().await else { return };
            super::$case(kv, unique_prefix(stringify!($case))).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryKv::new()) as SharedKv);
    redis_single => open_redis(celeriac_testkit::redis_single()).await;
    redis_cluster => open_redis(celeriac_testkit::redis_cluster()).await;
    redis_tls => open_redis(celeriac_testkit::redis_tls()).await;
}
