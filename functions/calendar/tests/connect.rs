//! Each user's own Google account, end to end on real parts (PostgreSQL, Redis, the
//! Google stand-in's consent, token and revocation endpoints): connect, the callback
//! refusing a wrong or another session's state, the refresh token sealed at rest, reads
//! with that user's own token, disconnect revoking and forgetting; and the key ring read
//! from Secrets Manager (moto), rotated without losing a token.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use celeriac_cache::CacheConfig;
use celeriac_calendar::CalendarBackend;
use celeriac_calendar::cache::CalendarCache;
use celeriac_calendar::config::{CalendarConfig, ProviderConfig};
use celeriac_calendar::credentials::CredentialVault;
use celeriac_calendar::http::{self as endpoints, CalendarApi};
use celeriac_calendar::keyring::{KeyRing, LazyKeyRing};
use celeriac_calendar::oauth::{OAuthClient, OAuthFlow};
use celeriac_calendar::postgres::PgCalendarStore;
use celeriac_calendar::provider::google::{Accounts, GoogleCalendar, RefreshTokens};
use celeriac_calendar::store::{MemoryCalendarStore, SharedCalendarStore};
use celeriac_calendar::sync::sync_calendar;
use celeriac_kv::{RedisKv, SharedKv};
use celeriac_platform::config::HttpConfig;
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::{InProcess, TaskClient, TaskStore};
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use support::GoogleStandin;
use tower::ServiceExt;

const OLD_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const NEW_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const REDIRECT: &str = "https://api.example.test/oauth/google-calendar/callback";

fn ring(keys: &[(&str, &str)]) -> KeyRing {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(id, key)| serde_json::json!({ "id": id, "key": key }))
        .collect();
    KeyRing::from_json(&SecretString::from(
        serde_json::json!({ "keys": keys }).to_string(),
    ))
    .expect("key ring")
}

struct Harness {
    app: Router,
    standin: GoogleStandin,
    store: SharedCalendarStore,
    provider: celeriac_calendar::provider::SharedProvider,
    mei: String,
    kai: String,
    mei_session: String,
    kai_session: String,
}

struct Answer {
    status: u16,
    location: String,
    body: Value,
}

async fn harness() -> Option<Harness> {
    let pool = support::postgres_pool().await?;
    let redis = celeriac_testkit::redis_single()?;
    let kv: SharedKv = Arc::new(RedisKv::open(&redis).await.expect("redis"));
    let standin = GoogleStandin::start(50).await;
    let store: SharedCalendarStore = Arc::new(PgCalendarStore::new(pool));
    let vault = CredentialVault::new(
        store.clone(),
        Arc::new(LazyKeyRing::ready(ring(&[("k1", OLD_KEY)]))),
    );
    let mut google = standin.config();
    google.accounts = Accounts::PerUser { token_keys: None };
    let provider: celeriac_calendar::provider::SharedProvider = Arc::new(
        GoogleCalendar::new(&google, RefreshTokens::PerUser(vault.clone())).expect("adapter"),
    );
    let flow = OAuthFlow::new(
        OAuthClient::new(&standin.oauth_settings()).expect("client"),
        vault,
        kv.clone(),
    );
    let config = CalendarConfig {
        provider: ProviderConfig::Google(google),
        cache_ttl: Duration::from_secs(360),
        channel_ttl: Duration::from_secs(7 * 86_400),
        webhook_url: None,
        public_base_url: Some("https://api.example.test".into()),
        oauth_redirect_url: None,
    };
    let cache = CalendarCache::with_config(
        kv.clone(),
        CacheConfig {
            prefix: celeriac_testkit::unique_prefix("calendar"),
            ..CacheConfig::default()
        },
        config.cache_ttl,
    );
    let backend = CalendarBackend::new(store.clone(), provider.clone(), kv.clone(), cache, config)
        .with_oauth(flow);
    let client = TaskClient::new(
        Arc::new(InProcess::default()),
        TaskStore::new(kv.clone()),
        "connect test",
    );
    let app = celeriac_platform::http::app(
        endpoints::all(CalendarApi::new(backend, Some(client))),
        &HttpConfig::default(),
    );
    let sessions = Sessions::new(kv, SessionConfig::default());
    let mei = uuid::Uuid::new_v4().to_string();
    let kai = uuid::Uuid::new_v4().to_string();
    let session = |user: String| {
        let sessions = sessions.clone();
        async move {
            sessions
                .create(&user, None)
                .await
                .expect("session")
                .token
                .as_str()
                .to_owned()
        }
    };
    Some(Harness {
        app,
        standin,
        store,
        provider,
        mei_session: session(mei.clone()).await,
        kai_session: session(kai.clone()).await,
        mei,
        kai,
    })
}

impl Harness {
    async fn call(&self, method: &str, path: &str, session: Option<&str>) -> Answer {
        let mut request = ::http::Request::builder().method(method).uri(path);
        if let Some(token) = session {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            location,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn a_user_connects_reads_with_their_own_token_and_disconnects() {
    let Some(h) = harness().await else { return };
    let (mei, kai) = (h.mei.as_str(), h.kai.as_str());
    let connect = format!("/calendar/{mei}/connect");
    assert_eq!(h.call("GET", &connect, None).await.status, 401);
    assert_eq!(
        h.call("GET", &connect, Some(&h.kai_session)).await.status,
        404
    );

    // Connect: a redirect to the consent page with a PKCE challenge and a state.
    let started = h.call("GET", &connect, Some(&h.mei_session)).await;
    assert_eq!(started.status, 302, "{}", started.body);
    assert_eq!(started.body["authorization_url"], started.location.as_str());
    assert!(
        started
            .location
            .starts_with(&format!("{}/authorize?", h.standin.url))
    );
    let consent = query_of(&started.location);
    assert_eq!(consent["code_challenge_method"], "S256");
    assert_eq!(consent["code_challenge"].len(), 43);
    assert_eq!(
        consent["scope"],
        "https://www.googleapis.com/auth/calendar.readonly"
    );
    assert_eq!(consent["redirect_uri"], REDIRECT);
    assert_eq!(consent["access_type"], "offline");
    let state = consent["state"].clone();

    // The user allows; Google sends the browser back with a code and the state.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let back = no_redirects
        .get(&started.location)
        .send()
        .await
        .expect("consent");
    assert_eq!(back.status(), 302);
    let back = back.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(back.starts_with(REDIRECT), "{back}");
    let returned = query_of(&back);
    assert_eq!(returned["state"], state);
    let code = returned["code"].clone();

    let callback =
        |state: &str| format!("/oauth/google-calendar/callback?state={state}&code={code}");
    let wrong = h
        .call("GET", &callback("not-the-state"), Some(&h.mei_session))
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(wrong.body["error"]["code"], "bad_request");
    let other_session = h.call("GET", &callback(&state), Some(&h.kai_session)).await;
    assert_eq!(other_session.status, 400, "{}", other_session.body);
    assert_eq!(h.call("GET", &callback(&state), None).await.status, 401);
    assert!(h.store.credential(mei).await.expect("get").is_none());
    assert!(h.store.credential(kai).await.expect("get").is_none());

    let connected = h.call("GET", &callback(&state), Some(&h.mei_session)).await;
    assert_eq!(connected.status, 200, "{}", connected.body);
    assert_eq!(connected.body["connected"], true);
    // The state is used up.
    let replay = h.call("GET", &callback(&state), Some(&h.mei_session)).await;
    assert_eq!(replay.status, 400);

    // Stored sealed: the bytes do not contain the refresh token Google issued.
    let issued = h.standin.issued_refresh_tokens();
    assert_eq!(issued.len(), 1);
    let refresh = issued[0].clone();
    let stored = h.store.credential(mei).await.expect("get").expect("stored");
    assert_eq!(stored.sealed.key_id, "k1");
    assert!(
        !stored
            .sealed
            .bytes
            .windows(refresh.len())
            .any(|w| w == refresh.as_bytes())
    );
    assert!(!format!("{stored:?}").contains(&refresh));

    // Reads use Mei's own token; Kai, not connected, is told to connect.
    h.standin.put_event("primary", "tea", "Tea with Mei", 3);
    let status = h
        .call(
            "GET",
            &format!("/webhook/status/{mei}"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(status.body["connected"], true);
    let setup = h
        .call(
            "POST",
            &format!("/webhook/setup/{mei}"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(setup.status, 201, "{}", setup.body);
    let channel_id = setup.body["channel_id"]
        .as_str()
        .expect("channel")
        .to_owned();
    sync_calendar(&h.store, &h.provider, mei, "primary", None)
        .await
        .expect("synced");
    let events = h
        .call(
            "GET",
            &format!("/calendar/{mei}/events"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(events.status, 200, "{}", events.body);
    assert_eq!(events.body["events"][0]["summary"], "Tea with Mei");
    let calls = h.standin.api_calls_by();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|by| *by == refresh), "{calls:?}");
    let kai_setup = h
        .call(
            "POST",
            &format!("/webhook/setup/{kai}"),
            Some(&h.kai_session),
        )
        .await;
    assert_eq!(kai_setup.status, 409, "{}", kai_setup.body);
    assert!(
        kai_setup.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("connect")
    );

    // Kai connects his own account: his calls use his token, Mei's stay hers.
    let kai_started = h
        .call(
            "GET",
            &format!("/calendar/{kai}/connect"),
            Some(&h.kai_session),
        )
        .await;
    let kai_back = no_redirects
        .get(&kai_started.location)
        .send()
        .await
        .expect("consent");
    let kai_back = query_of(kai_back.headers()["location"].to_str().expect("location"));
    let kai_connected = h
        .call(
            "GET",
            &format!(
                "/oauth/google-calendar/callback?state={}&code={}",
                kai_back["state"], kai_back["code"]
            ),
            Some(&h.kai_session),
        )
        .await;
    assert_eq!(kai_connected.status, 200, "{}", kai_connected.body);
    let kai_refresh = h
        .standin
        .issued_refresh_tokens()
        .into_iter()
        .find(|t| *t != refresh)
        .expect("Kai's token");
    let before = h.standin.api_calls_by().len();
    let kai_calendars = h
        .call(
            "GET",
            &format!("/calendar/{kai}/calendars"),
            Some(&h.kai_session),
        )
        .await;
    assert_eq!(kai_calendars.status, 200, "{}", kai_calendars.body);
    let mei_calendars = h
        .call(
            "GET",
            &format!("/calendar/{mei}/calendars"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(mei_calendars.status, 200, "{}", mei_calendars.body);
    assert_eq!(
        h.standin.api_calls_by()[before..],
        [kai_refresh.clone(), refresh.clone()]
    );

    // Only Mei disconnects Mei.
    let disconnect = format!("/calendar/{mei}/connection");
    assert_eq!(h.call("DELETE", &disconnect, None).await.status, 401);
    let by_kai = h.call("DELETE", &disconnect, Some(&h.kai_session)).await;
    assert_eq!(by_kai.status, 404);
    assert!(h.store.credential(mei).await.expect("get").is_some());
    assert!(h.standin.revoked().is_empty());

    let gone = h.call("DELETE", &disconnect, Some(&h.mei_session)).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.body["revoked"], true);
    assert_eq!(gone.body["channels_stopped"], 1);
    assert_eq!(h.standin.revoked(), std::slice::from_ref(&refresh));
    assert!(
        h.standin.channel(&channel_id).is_none(),
        "stopped at Google"
    );
    assert!(h.store.credential(mei).await.expect("get").is_none());
    let after = h
        .call(
            "GET",
            &format!("/calendar/{mei}/events"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(after.body["events"], serde_json::json!([]));
    let status = h
        .call(
            "GET",
            &format!("/webhook/status/{mei}"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(status.body["connected"], false);
    // Disconnected means no more calls with her token; Kai's connection is untouched.
    let again = h
        .call(
            "POST",
            &format!("/webhook/setup/{mei}"),
            Some(&h.mei_session),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(h.store.credential(kai).await.expect("get").is_some());
}

#[tokio::test]
async fn the_key_ring_comes_from_secrets_manager_and_rotates_without_losing_tokens() {
    let Some(sdk) = celeriac_testkit::moto_sdk().await else {
        return;
    };
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = celeriac_testkit::unique_prefix("calendar-token-keys").replace([':', '{', '}'], "-");
    let document = |keys: &[(&str, &str)]| {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(id, key)| serde_json::json!({ "id": id, "key": key }))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    };
    let arn = secrets
        .create_secret()
        .name(&name)
        .secret_string(document(&[("2026-06", OLD_KEY)]))
        .send()
        .await
        .expect("secret")
        .arn
        .expect("arn");
    let store: SharedCalendarStore = Arc::new(MemoryCalendarStore::new());
    let before = CredentialVault::new(
        store.clone(),
        Arc::new(LazyKeyRing::ready(
            KeyRing::from_secret(&sdk, &arn).await.expect("ring"),
        )),
    );
    let token = SecretString::from("1//mei-refresh-token");
    before
        .save(
            "mei",
            &token,
            "https://www.googleapis.com/auth/calendar.readonly",
        )
        .await
        .expect("saved");
    let sealed_before = store.credential("mei").await.expect("get").expect("mei");
    assert_eq!(sealed_before.sealed.key_id, "2026-06");

    // Rotation: the operator puts a new key first and keeps the old one.
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(document(&[("2026-12", NEW_KEY), ("2026-06", OLD_KEY)]))
        .send()
        .await
        .expect("rotated");
    let rotated = KeyRing::from_secret(&sdk, &arn).await.expect("ring");
    assert_eq!(rotated.current_key_id(), "2026-12");
    let after = CredentialVault::new(store.clone(), Arc::new(LazyKeyRing::ready(rotated)));
    let read = after
        .refresh_token("mei")
        .await
        .expect("read")
        .expect("connected");
    assert_eq!(read.expose_secret(), "1//mei-refresh-token");
    // Read under the old key, sealed again under the new one.
    let moved = store.credential("mei").await.expect("get").expect("mei");
    assert_eq!(moved.sealed.key_id, "2026-12");
    assert_ne!(moved.sealed.bytes, sealed_before.sealed.bytes);
    // Once moved, the old key can go.
    let pruned = CredentialVault::new(
        store,
        Arc::new(LazyKeyRing::ready(ring(&[("2026-12", NEW_KEY)]))),
    );
    assert_eq!(
        pruned
            .refresh_token("mei")
            .await
            .expect("read")
            .expect("connected")
            .expose_secret(),
        "1//mei-refresh-token"
    );
}
