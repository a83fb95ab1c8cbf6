//! One conformance suite for the key-value port, run against every adapter: memory,
//! Redis single node, the 3-node cluster and the TLS node (the last three from the
//! stand-ins started by `infra/standins`).

use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{KeyValue, KvError, MemoryKv, RedisKv, SharedKv, Swap};
use celeriac_platform::config::{RedisConfig, RedisTopology};
use celeriac_testkit::unique_prefix;

async fn open_redis(config: Option<RedisConfig>) -> Option<SharedKv> {
    let kv = RedisKv::open(&config?).await.expect("valid redis config");
    kv.ping().await.expect("stand-in redis answers PING");
    Some(Arc::new(kv))
}

async fn roundtrip(kv: SharedKv, p: String) {
    let key = format!("{p}:a");
    assert_eq!(kv.get(&key).await.expect("get"), None);
    let value = [0u8, 159, 146, 150, b'x'];
    kv.set(&key, &value, None).await.expect("set");
    assert_eq!(
        kv.get(&key).await.expect("get").as_deref(),
        Some(&value[..])
    );
    kv.set(&key, b"second", None).await.expect("overwrite");
    assert_eq!(
        kv.get(&key).await.expect("get").as_deref(),
        Some(&b"second"[..])
    );
}

async fn ttl_and_expiry(kv: SharedKv, p: String) {
    let key = format!("{p}:ttl");
    kv.set(&key, b"v", Some(Duration::from_secs(30)))
        .await
        .expect("set");
    let left = kv.ttl(&key).await.expect("ttl").expect("has a ttl");
    assert!(
        left <= Duration::from_secs(30) && left > Duration::from_secs(25),
        "{left:?}"
    );

    // A plain SET drops the old TTL, as Redis does.
    kv.set(&key, b"v2", None).await.expect("set");
    assert_eq!(kv.ttl(&key).await.expect("ttl"), None);
    assert_eq!(kv.ttl(&format!("{p}:absent")).await.expect("ttl"), None);

    let short = format!("{p}:short");
    kv.set(&short, b"v", Some(Duration::from_millis(50)))
        .await
        .expect("set");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        kv.get(&short).await.expect("get"),
        None,
        "expired keys are gone"
    );
}

async fn set_if_absent(kv: SharedKv, p: String) {
    let key = format!("{p}:lock");
    assert!(
        kv.set_if_absent(&key, b"first", Some(Duration::from_secs(30)))
            .await
            .expect("nx")
    );
    assert!(!kv.set_if_absent(&key, b"second", None).await.expect("nx"));
    assert_eq!(
        kv.get(&key).await.expect("get").as_deref(),
        Some(&b"first"[..])
    );
    assert!(kv.ttl(&key).await.expect("ttl").is_some());

    assert!(kv.delete(&key).await.expect("delete"));
    assert!(!kv.delete(&key).await.expect("delete again"));
    assert!(
        kv.set_if_absent(&key, b"third", None)
            .await
            .expect("nx after delete")
    );

    let expiring = format!("{p}:expiring");
    assert!(
        kv.set_if_absent(&expiring, b"1", Some(Duration::from_millis(50)))
            .await
            .expect("nx")
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        kv.set_if_absent(&expiring, b"2", None)
            .await
            .expect("nx after expiry")
    );
}

async fn exactly_one_winner(kv: SharedKv, p: String) {
    let key = format!("{p}:race");
    let attempts = (0..50).map(|i| {
        let kv = kv.clone();
        let key = key.clone();
        async move {
            kv.set_if_absent(
                &key,
                i.to_string().as_bytes(),
                Some(Duration::from_secs(30)),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results
        .into_iter()
        .filter(|r| *r.as_ref().expect("nx"))
        .count();
    assert_eq!(winners, 1);
}

async fn compare_and_swap(kv: SharedKv, p: String) {
    let key = format!("{p}:cas");
    let minute = Some(Duration::from_secs(60));
    assert_eq!(
        kv.compare_and_swap(&key, Some(b"a"), b"b", minute)
            .await
            .expect("cas on absent"),
        Swap::Current(None),
        "an absent key does not match a value"
    );
    assert_eq!(
        kv.compare_and_swap(&key, None, b"a", minute)
            .await
            .expect("cas create"),
        Swap::Swapped
    );
    assert_eq!(
        kv.compare_and_swap(&key, None, b"x", minute)
            .await
            .expect("cas create again"),
        Swap::Current(Some(b"a".to_vec()))
    );
    assert_eq!(
        kv.compare_and_swap(&key, Some(b"a"), b"b", Some(Duration::from_millis(200)))
            .await
            .expect("cas replace"),
        Swap::Swapped
    );
    assert_eq!(kv.get(&key).await.expect("get"), Some(b"b".to_vec()));
    let ttl = kv
        .ttl(&key)
        .await
        .expect("ttl")
        .expect("the swap set a ttl");
    assert!(ttl <= Duration::from_millis(200), "{ttl:?}");
    // Empty values compare as values, not as absence.
    assert_eq!(
        kv.compare_and_swap(&key, Some(b"b"), b"", None)
            .await
            .expect("cas to empty"),
        Swap::Swapped
    );
    assert_eq!(
        kv.ttl(&key).await.expect("ttl"),
        None,
        "no ttl given: none kept"
    );
    assert_eq!(
        kv.compare_and_swap(&key, None, b"c", None)
            .await
            .expect("cas on empty"),
        Swap::Current(Some(Vec::new()))
    );
    kv.delete(&key).await.expect("cleanup");
}

async fn one_swap_wins_a_race(kv: SharedKv, p: String) {
    let key = format!("{p}:cas-race");
    kv.set(&key, b"0", Some(Duration::from_secs(30)))
        .await
        .expect("set");
    let attempts = (1..=50).map(|i| {
        let kv = kv.clone();
        let key = key.clone();
        async move {
            kv.compare_and_swap(&key, Some(b"0"), i.to_string().as_bytes(), None)
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results
        .iter()
        .filter(|r| *r.as_ref().expect("cas") == Swap::Swapped)
        .count();
    assert_eq!(winners, 1);
    kv.delete(&key).await.expect("cleanup");
}

async fn counters(kv: SharedKv, p: String) {
    let key = format!("{p}:count");
    assert_eq!(
        kv.increment(&key, 1, Some(Duration::from_secs(10)))
            .await
            .expect("incr"),
        1
    );
    assert_eq!(
        kv.increment(&key, 5, Some(Duration::from_secs(100)))
            .await
            .expect("incr"),
        6
    );
    assert_eq!(kv.increment(&key, -2, None).await.expect("decr"), 4);
    // The window is fixed by the first increment: the later, longer TTL did not extend it.
    let left = kv
        .ttl(&key)
        .await
        .expect("ttl")
        .expect("ttl set by first increment");
    assert!(left <= Duration::from_secs(10), "{left:?}");

    let concurrent = (0..40).map(|_| {
        let kv = kv.clone();
        let key = format!("{p}:concurrent");
        async move { kv.increment(&key, 1, None).await }
    });
    for r in futures::future::join_all(concurrent).await {
        r.expect("incr");
    }
    assert_eq!(
        kv.get(&format!("{p}:concurrent"))
            .await
            .expect("get")
            .as_deref(),
        Some(&b"40"[..])
    );

    let text = format!("{p}:text");
    kv.set(&text, b"not a number", None).await.expect("set");
    let err = kv
        .increment(&text, 1, None)
        .await
        .expect_err("not an integer");
    assert!(matches!(err, KvError::Rejected(_)), "{err:?}");
    assert!(!err.is_retryable());
}

async fn many_keys_across_slots(kv: SharedKv, p: String) {
    // On the cluster these land on different nodes; hash-tagged ones share a slot.
    for i in 0..30 {
        kv.set(
            &format!("{p}:spread:{i}"),
            i.to_string().as_bytes(),
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("set");
        kv.set(
            &format!("{{{p}:tag}}:{i}"),
            b"t",
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("set tagged");
    }
    for i in 0..30 {
        let v = kv.get(&format!("{p}:spread:{i}")).await.expect("get");
        assert_eq!(v, Some(i.to_string().into_bytes()));
    }
    kv.ping().await.expect("ping");
}

async fn set_if_present(kv: SharedKv, p: String) {
    let key = format!("{p}:record");
    assert!(
        !kv.set_if_present(&key, b"ghost", Some(Duration::from_secs(30)))
            .await
            .expect("xx"),
        "an absent key is not created"
    );
    assert_eq!(kv.get(&key).await.expect("get"), None);

    kv.set(&key, b"v1", Some(Duration::from_secs(5)))
        .await
        .expect("set");
    assert!(
        kv.set_if_present(&key, b"v2", Some(Duration::from_secs(60)))
            .await
            .expect("xx")
    );
    assert_eq!(
        kv.get(&key).await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    let left = kv.ttl(&key).await.expect("ttl").expect("has a ttl");
    assert!(
        left > Duration::from_secs(30),
        "the new TTL replaced the old: {left:?}"
    );

    kv.delete(&key).await.expect("delete");
    assert!(
        !kv.set_if_present(&key, b"v3", None).await.expect("xx"),
        "a deleted key stays deleted"
    );
    assert_eq!(kv.get(&key).await.expect("get"), None);
}

async fn get_and_refresh(kv: SharedKv, p: String) {
    let key = format!("{p}:sliding");
    assert_eq!(
        kv.get_and_refresh(&key, Duration::from_secs(60))
            .await
            .expect("getex"),
        None
    );
    assert_eq!(
        kv.ttl(&key).await.expect("ttl"),
        None,
        "absent stays absent"
    );

    kv.set(&key, b"record", Some(Duration::from_secs(2)))
        .await
        .expect("set");
    assert_eq!(
        kv.get_and_refresh(&key, Duration::from_secs(60))
            .await
            .expect("getex")
            .as_deref(),
        Some(&b"record"[..])
    );
    let left = kv.ttl(&key).await.expect("ttl").expect("has a ttl");
    assert!(left > Duration::from_secs(30), "TTL was reset: {left:?}");

    // Shortening works too: the TTL is set, not extended.
    kv.get_and_refresh(&key, Duration::from_millis(50))
        .await
        .expect("getex");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(kv.get(&key).await.expect("get"), None);
}

async fn sets(kv: SharedKv, p: String) {
    let key = format!("{p}:set");
    assert!(kv.set_members(&key).await.expect("smembers").is_empty());
    kv.set_add(&key, &[], Duration::from_secs(30))
        .await
        .expect("sadd nothing");
    assert_eq!(
        kv.ttl(&key).await.expect("ttl"),
        None,
        "no empty set created"
    );

    kv.set_add(&key, &["a", "b"], Duration::from_secs(10))
        .await
        .expect("sadd");
    kv.set_add(&key, &["b", "c"], Duration::from_secs(10))
        .await
        .expect("sadd");
    let mut members = kv.set_members(&key).await.expect("smembers");
    members.sort();
    assert_eq!(members, ["a", "b", "c"]);

    // The TTL grows to the longest one asked for and never shrinks.
    kv.set_add(&key, &["d"], Duration::from_secs(100))
        .await
        .expect("sadd");
    kv.set_add(&key, &["e"], Duration::from_secs(5))
        .await
        .expect("sadd");
    let left = kv.ttl(&key).await.expect("ttl").expect("has a ttl");
    assert!(left > Duration::from_secs(90), "{left:?}");

    assert_eq!(
        kv.set_remove(&key, &["a", "zzz"]).await.expect("srem"),
        1,
        "only members count"
    );
    assert_eq!(kv.set_remove(&key, &[]).await.expect("srem nothing"), 0);
    assert_eq!(
        kv.set_remove(&key, &["b", "c", "d", "e"])
            .await
            .expect("srem"),
        4
    );
    assert!(kv.set_members(&key).await.expect("smembers").is_empty());
    assert_eq!(
        kv.ttl(&key).await.expect("ttl"),
        None,
        "an empty set is gone"
    );

    let expiring = format!("{p}:expiring-set");
    kv.set_add(&expiring, &["x"], Duration::from_millis(50))
        .await
        .expect("sadd");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        kv.set_members(&expiring)
            .await
            .expect("smembers")
            .is_empty()
    );
}

async fn wrong_kind(kv: SharedKv, p: String) {
    let set = format!("{p}:a-set");
    let bytes = format!("{p}:bytes");
    kv.set_add(&set, &["m"], Duration::from_secs(30))
        .await
        .expect("sadd");
    kv.set(&bytes, b"v", Some(Duration::from_secs(30)))
        .await
        .expect("set");

    let refusals = [
        kv.get(&set).await.map(|_| ()),
        kv.get_and_refresh(&set, Duration::from_secs(1))
            .await
            .map(|_| ()),
        kv.increment(&set, 1, None).await.map(|_| ()),
        kv.set_add(&bytes, &["m"], Duration::from_secs(30)).await,
        kv.set_members(&bytes).await.map(|_| ()),
        kv.set_remove(&bytes, &["m"]).await.map(|_| ()),
    ];
    for (i, refusal) in refusals.into_iter().enumerate() {
        let err = refusal.expect_err("wrong kind of key");
        assert!(matches!(err, KvError::Rejected(_)), "case {i}: {err:?}");
    }
    // Refused commands changed nothing.
    assert_eq!(
        kv.get(&bytes).await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(kv.set_members(&set).await.expect("smembers"), ["m"]);
    assert!(
        kv.ttl(&set).await.expect("ttl").expect("has a ttl") > Duration::from_secs(20),
        "a refused GETEX did not touch the TTL"
    );

    // SET replaces a key of any kind, as in Redis.
    kv.set(&set, b"now bytes", None)
        .await
        .expect("set over a set");
    assert_eq!(
        kv.get(&set).await.expect("get").as_deref(),
        Some(&b"now bytes"[..])
    );
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedKv> { $open }
            conformance!(@cases roundtrip, ttl_and_expiry, set_if_absent, exactly_one_winner,
                compare_and_swap, one_swap_wins_a_race, counters, many_keys_across_slots,
                set_if_present, get_and_refresh, sets, wrong_kind);
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

/// Redis down at init: the adapter still opens, and every call is a retryable error.
#[tokio::test]
async fn redis_down_is_unavailable_not_a_crash() {
    let config = RedisConfig {
        topology: RedisTopology::Single(
            format!("redis://{}", celeriac_testkit::dead_address()).into(),
        ),
        ca_file: None,
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    };
    let kv = RedisKv::open(&config)
        .await
        .expect("opens without a server");
    let err = kv.get("anything").await.expect_err("nothing listens");
    assert!(err.is_retryable(), "{err:?}");
    assert!(kv.ping().await.is_err());
}

/// A missing CA file is a configuration error at init, named, not a runtime surprise.
#[tokio::test]
async fn a_missing_ca_file_fails_at_init() {
    let config = RedisConfig {
        topology: RedisTopology::Single("rediss://127.0.0.1:1".to_owned().into()),
        ca_file: Some("/nonexistent/ca.pem".into()),
        response_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
    };
    let err = RedisKv::open(&config).await.expect_err("no such CA file");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
