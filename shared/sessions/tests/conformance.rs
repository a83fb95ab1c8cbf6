//! One conformance suite for sessions, run over every key-value adapter: memory, Redis
//! single node, the 3-node cluster and the TLS node (stand-ins from `infra/standins`).

use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{KeyValue, MemoryKv, RedisKv, SharedKv};
use celeriac_platform::config::RedisConfig;
use celeriac_sessions::{Session, SessionConfig, SessionError, Sessions};
use celeriac_testkit::unique_prefix;
use sha2::{Digest, Sha256};

async fn open_redis(config: Option<RedisConfig>) -> Option<SharedKv> {
    let kv = RedisKv::open(&config?).await.expect("valid redis config");
    kv.ping().await.expect("stand-in redis answers PING");
    Some(Arc::new(kv))
}

fn config(prefix: &str) -> SessionConfig {
    SessionConfig {
        prefix: prefix.to_owned(),
        ..SessionConfig::default()
    }
}

/// Where the record of `token` must be: under the hash, never the token.
fn record_key(prefix: &str, token: &str) -> String {
    format!("{prefix}:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

fn is_invalid(result: Result<impl std::fmt::Debug, SessionError>) -> bool {
    matches!(result, Err(SessionError::Invalid))
}

async fn login_always_issues_a_fresh_token(kv: SharedKv, p: String) {
    let sessions = Sessions::new(kv, config(&p));

    // An attacker plants a well-formed token of their choosing before the victim logs in.
    let planted = "ab".repeat(32);
    let login = sessions
        .create("alice", Some(&planted))
        .await
        .expect("login");
    assert_ne!(login.token.as_str(), planted);
    assert!(is_invalid(sessions.authenticate(&planted).await));
    assert_eq!(
        sessions
            .authenticate(login.token.as_str())
            .await
            .expect("live")
            .user_id,
        "alice"
    );

    // Logging in again with the current session rotates it.
    let again = sessions
        .create("alice", Some(login.token.as_str()))
        .await
        .expect("login");
    assert_ne!(again.token, login.token);
    assert!(
        is_invalid(sessions.authenticate(login.token.as_str()).await),
        "the presented session ended"
    );
    assert!(sessions.authenticate(again.token.as_str()).await.is_ok());

    let tokens: std::collections::HashSet<String> =
        futures::future::join_all((0..20).map(|_| sessions.create("bob", None)))
            .await
            .into_iter()
            .map(|s| s.expect("login").token.as_str().to_owned())
            .collect();
    assert_eq!(tokens.len(), 20, "every login gets its own token");
    assert!(
        tokens
            .iter()
            .all(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
    );
}

async fn only_hashes_reach_the_store(kv: SharedKv, p: String) {
    let sessions = Sessions::new(kv.clone(), config(&p));
    let login = sessions.create("carol", None).await.expect("login");
    let token = login.token.as_str();

    assert_eq!(kv.get(&format!("{p}:{token}")).await.expect("get"), None);
    let record = kv
        .get(&record_key(&p, token))
        .await
        .expect("get")
        .expect("the record is under the token's SHA-256");
    assert!(
        !String::from_utf8_lossy(&record).contains(token),
        "the record does not hold the token"
    );
    let members = kv
        .set_members(&format!("{p}:user:carol"))
        .await
        .expect("smembers");
    assert_eq!(
        members,
        [hex::encode(Sha256::digest(token.as_bytes()))],
        "the user's set lists the hash"
    );
    let left = kv
        .ttl(&record_key(&p, token))
        .await
        .expect("ttl")
        .expect("records expire");
    assert!(left <= SessionConfig::default().idle_timeout, "{left:?}");
    assert!(
        kv.ttl(&format!("{p}:user:carol"))
            .await
            .expect("ttl")
            .expect("the set expires")
            > left,
        "the user's set outlives the record"
    );
}

async fn use_slides_the_expiry(kv: SharedKv, p: String) {
    let sessions = Sessions::new(
        kv.clone(),
        SessionConfig {
            idle_timeout: Duration::from_secs(600),
            ..config(&p)
        },
    );
    let login = sessions.create("dave", None).await.expect("login");
    let key = record_key(&p, login.token.as_str());
    // Stand in for ten idle minutes: the record is two seconds from expiring.
    let record = kv.get(&key).await.expect("get").expect("record");
    kv.set(&key, &record, Some(Duration::from_secs(2)))
        .await
        .expect("set");

    let session = sessions
        .authenticate(login.token.as_str())
        .await
        .expect("still live");
    assert_eq!(session, login.session);
    let left = kv.ttl(&key).await.expect("ttl").expect("ttl");
    assert!(
        left > Duration::from_secs(500),
        "use restarted the idle timeout: {left:?}"
    );
}

async fn an_idle_session_expires(kv: SharedKv, p: String) {
    let sessions = Sessions::new(
        kv,
        SessionConfig {
            // Long enough that the first use, right after login, is surely within it on a
            // busy machine too (at 200 ms, a stall between the two failed it).
            idle_timeout: Duration::from_secs(1),
            ..config(&p)
        },
    );
    let login = sessions.create("erin", None).await.expect("login");
    assert!(sessions.authenticate(login.token.as_str()).await.is_ok());
    // A fixed wait: asking again meanwhile would be a use, restarting the idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(is_invalid(
        sessions.authenticate(login.token.as_str()).await
    ));
}

async fn a_session_ends_at_its_max_lifetime(kv: SharedKv, p: String) {
    let sessions = Sessions::new(
        kv.clone(),
        SessionConfig {
            // As above: the first use must surely fall within it, however busy the machine.
            max_lifetime: Duration::from_secs(1),
            ..config(&p)
        },
    );
    let login = sessions.create("frank", None).await.expect("login");
    assert!(sessions.authenticate(login.token.as_str()).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(is_invalid(
        sessions.authenticate(login.token.as_str()).await
    ));
    assert_eq!(
        kv.get(&record_key(&p, login.token.as_str()))
            .await
            .expect("get"),
        None,
        "the ended record was deleted"
    );
}

async fn last_seen_is_touched_once_per_interval(kv: SharedKv, p: String) {
    let every_time = Sessions::new(
        kv.clone(),
        SessionConfig {
            touch_interval: Duration::ZERO,
            ..config(&p)
        },
    );
    let login = every_time.create("gina", None).await.expect("login");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let touched = every_time
        .authenticate(login.token.as_str())
        .await
        .expect("live");
    assert!(touched.last_seen > login.session.last_seen);
    assert_eq!(touched.created_at, login.session.created_at);
    let record = kv
        .get(&record_key(&p, login.token.as_str()))
        .await
        .expect("get")
        .expect("record");
    let stored: Session = serde_json::from_slice(&record).expect("a session record");
    assert_eq!(stored, touched, "the touch was stored");

    let hourly = Sessions::new(
        kv,
        SessionConfig {
            touch_interval: Duration::from_secs(3600),
            ..config(&p)
        },
    );
    let login = hourly.create("hank", None).await.expect("login");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let seen = hourly
        .authenticate(login.token.as_str())
        .await
        .expect("live");
    assert_eq!(seen.last_seen, login.session.last_seen, "not rewritten yet");
}

async fn logout(kv: SharedKv, p: String) {
    let sessions = Sessions::new(kv.clone(), config(&p));
    let login = sessions.create("ivy", None).await.expect("login");
    let other = sessions.create("ivy", None).await.expect("second device");

    assert!(
        sessions
            .destroy(login.token.as_str())
            .await
            .expect("logout")
    );
    assert!(is_invalid(
        sessions.authenticate(login.token.as_str()).await
    ));
    assert!(
        sessions.authenticate(other.token.as_str()).await.is_ok(),
        "other sessions of the user stay"
    );
    assert!(
        !sessions.destroy(login.token.as_str()).await.expect("again"),
        "a second logout finds nothing"
    );
    assert!(!sessions.destroy("not a token").await.expect("malformed"));
    let members = kv
        .set_members(&format!("{p}:user:ivy"))
        .await
        .expect("smembers");
    assert_eq!(members.len(), 1, "the ended session left its user's set");

    for garbage in ["", "Bearer", &"z".repeat(64), &"a".repeat(10_000)] {
        assert!(is_invalid(sessions.authenticate(garbage).await));
    }
}

async fn revoke_all(kv: SharedKv, p: String) {
    let sessions = Sessions::new(kv.clone(), config(&p));
    let mut jacks = Vec::new();
    for _ in 0..4 {
        jacks.push(sessions.create("jack", None).await.expect("login"));
    }
    let kim = sessions.create("kim", None).await.expect("login");
    sessions
        .destroy(jacks[3].token.as_str())
        .await
        .expect("logout");

    assert_eq!(sessions.revoke_all("jack").await.expect("revoke"), 3);
    for jack in &jacks {
        assert!(is_invalid(sessions.authenticate(jack.token.as_str()).await));
    }
    assert!(
        sessions.authenticate(kim.token.as_str()).await.is_ok(),
        "another user's session stays"
    );
    assert!(
        kv.set_members(&format!("{p}:user:jack"))
            .await
            .expect("smembers")
            .is_empty()
    );
    assert_eq!(sessions.revoke_all("jack").await.expect("again"), 0);
    assert_eq!(sessions.revoke_all("nobody").await.expect("unknown"), 0);

    let fresh = sessions.create("jack", None).await.expect("login after");
    assert!(sessions.authenticate(fresh.token.as_str()).await.is_ok());
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedKv> { $open }
            conformance!(@cases login_always_issues_a_fresh_token, only_hashes_reach_the_store,
                use_slides_the_expiry, an_idle_session_expires,
                a_session_ends_at_its_max_lifetime, last_seen_is_touched_once_per_interval,
                logout, revoke_all);
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
