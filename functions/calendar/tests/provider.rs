//! One conformance suite for the calendar provider port, run against the fixture provider
//! and the Google adapter talking to the local stand-in of the Google Calendar API; then
//! what only the Google adapter does: OAuth token refresh and status codes mapped to
//! whether a retry can help.

mod support;

use std::sync::Arc;
use std::time::Duration;

use celeriac_calendar::provider::fixture::FixtureProvider;
use celeriac_calendar::provider::google::{GoogleCalendar, RefreshTokens};
use celeriac_calendar::provider::{CalendarProvider, ProviderError, SharedProvider, WatchRequest};
use celeriac_calendar::store::{CalendarEvent, EventTime};
use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use support::GoogleStandin;
use uuid::Uuid;

/// The calendar behind a provider, changed as a user would change it.
trait Remote: Send + Sync {
    fn put(&self, user: &str, calendar: &str, id: &str, summary: &str);
    fn delete(&self, user: &str, calendar: &str, id: &str);
    fn expire_sync_tokens(&self, user: &str, calendar: &str);
}

struct Fixture(Arc<FixtureProvider>);

impl Remote for Fixture {
    fn put(&self, user: &str, calendar: &str, id: &str, summary: &str) {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        self.0.put_event(
            user,
            calendar,
            CalendarEvent {
                id: id.into(),
                status: "confirmed".into(),
                summary: Some(summary.into()),
                description: None,
                location: None,
                start: EventTime {
                    date_time: Some(start),
                    ..EventTime::default()
                },
                end: EventTime::default(),
                updated: None,
                html_link: None,
            },
        );
    }
    fn delete(&self, user: &str, calendar: &str, id: &str) {
        self.0.delete_event(user, calendar, id).expect("existed");
    }
    fn expire_sync_tokens(&self, user: &str, calendar: &str) {
        self.0.expire_sync_tokens(user, calendar);
    }
}

impl Remote for GoogleStandin {
    fn put(&self, _user: &str, calendar: &str, id: &str, summary: &str) {
        self.put_event(calendar, id, summary, 2);
    }
    fn delete(&self, _user: &str, calendar: &str, id: &str) {
        self.delete_event(calendar, id);
    }
    fn expire_sync_tokens(&self, _user: &str, calendar: &str) {
        GoogleStandin::expire_sync_tokens(self, calendar);
    }
}

/// A calendar of this case alone (ids with `@`, as Google's secondary calendars have).
fn fresh() -> (String, String) {
    let id = Uuid::new_v4().simple().to_string();
    (
        format!("user-{id}"),
        format!("{id}@group.calendar.google.com"),
    )
}

/// Every page of a list, as (items, pages, sync token).
async fn list_all(
    provider: &SharedProvider,
    user: &str,
    calendar: &str,
    token: Option<&str>,
) -> Result<(Vec<CalendarEvent>, usize, String), ProviderError> {
    let mut items = Vec::new();
    let mut page = None;
    let mut pages = 0;
    loop {
        let answer = provider
            .list_events(user, calendar, token, page.as_deref())
            .await?;
        pages += 1;
        items.extend(answer.items);
        match answer.next_page_token {
            Some(next) => {
                assert!(
                    answer.next_sync_token.is_none(),
                    "sync token before the end"
                );
                page = Some(next);
            }
            None => {
                let token = answer
                    .next_sync_token
                    .expect("a sync token on the last page");
                return Ok((items, pages, token));
            }
        }
    }
}

async fn a_full_list_pages_and_ends_with_a_sync_token(p: SharedProvider, r: Arc<dyn Remote>) {
    let (user, calendar) = fresh();
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        r.put(&user, &calendar, name, &format!("Event {i}"));
    }
    let (items, pages, _) = list_all(&p, &user, &calendar, None).await.expect("list");
    assert_eq!(pages, 3, "5 events, 2 a page");
    let mut ids: Vec<&str> = items.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);
    assert!(
        items
            .iter()
            .all(|e| !e.is_cancelled() && e.summary.is_some())
    );
    assert!(
        items
            .iter()
            .all(|e| e.start.date_time.is_some() && e.updated.is_some())
    );
}

async fn an_incremental_list_returns_only_changes(p: SharedProvider, r: Arc<dyn Remote>) {
    let (user, calendar) = fresh();
    for name in ["a", "b", "c"] {
        r.put(&user, &calendar, name, "Before");
    }
    let (_, _, token) = list_all(&p, &user, &calendar, None).await.expect("full");
    r.put(&user, &calendar, "a", "After");
    r.delete(&user, &calendar, "b");
    r.put(&user, &calendar, "n", "New");
    let (items, _, next) = list_all(&p, &user, &calendar, Some(&token))
        .await
        .expect("incremental");
    let mut seen: Vec<(String, String)> = items
        .iter()
        .map(|e| (e.id.clone(), e.status.clone()))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            ("a".into(), "confirmed".into()),
            ("b".into(), "cancelled".into()),
            ("n".into(), "confirmed".into())
        ]
    );
    let changed = items.iter().find(|e| e.id == "a").expect("a");
    assert_eq!(changed.summary.as_deref(), Some("After"));
    let (nothing, _, _) = list_all(&p, &user, &calendar, Some(&next))
        .await
        .expect("again");
    assert!(nothing.is_empty(), "{nothing:?}");
}

async fn an_expired_sync_token_asks_for_a_full_sync(p: SharedProvider, r: Arc<dyn Remote>) {
    let (user, calendar) = fresh();
    r.put(&user, &calendar, "a", "A");
    let (_, _, token) = list_all(&p, &user, &calendar, None).await.expect("full");
    r.expire_sync_tokens(&user, &calendar);
    let stale = p.list_events(&user, &calendar, Some(&token), None).await;
    assert!(
        matches!(stale, Err(ProviderError::SyncTokenExpired)),
        "{stale:?}"
    );
    assert!(!stale.expect_err("stale").is_retryable());
    let (items, _, _) = list_all(&p, &user, &calendar, None)
        .await
        .expect("full again");
    assert_eq!(items.len(), 1);
}

async fn a_watched_channel_stops_once(p: SharedProvider, _r: Arc<dyn Remote>) {
    let (user, calendar) = fresh();
    let channel = Uuid::new_v4().to_string();
    let watched = p
        .watch(&WatchRequest {
            user_id: &user,
            calendar_id: &calendar,
            channel_id: &channel,
            token: "a-token",
            address: "https://api.example.test/webhook/google-calendar",
            ttl: Duration::from_secs(3 * 86_400),
        })
        .await
        .expect("watch");
    assert!(!watched.resource_id.is_empty());
    let lifetime = watched.expires_at - Utc::now();
    assert!(
        lifetime > chrono::Duration::days(2) && lifetime <= chrono::Duration::days(3),
        "{lifetime}"
    );
    p.stop(&user, &channel, &watched.resource_id)
        .await
        .expect("stop");
    let again = p.stop(&user, &channel, &watched.resource_id).await;
    assert!(
        matches!(again, Err(ProviderError::NotFound(_))),
        "{again:?}"
    );
}

async fn calendars_are_listed_with_one_primary(p: SharedProvider, _r: Arc<dyn Remote>) {
    let (user, _) = fresh();
    let calendars = p.list_calendars(&user).await.expect("calendars");
    assert!(calendars.len() >= 2, "{calendars:?}");
    assert_eq!(calendars.iter().filter(|c| c.primary).count(), 1);
    assert!(
        calendars
            .iter()
            .all(|c| !c.id.is_empty() && !c.summary.is_empty())
    );
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn open() -> (SharedProvider, Arc<dyn Remote>) { $open }
            conformance!(@cases
                a_full_list_pages_and_ends_with_a_sync_token,
                an_incremental_list_returns_only_changes,
                an_expired_sync_token_asks_for_a_full_sync,
                a_watched_channel_stops_once,
                calendars_are_listed_with_one_primary);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test]
        async fn $case() {
            let (provider, remote) = open().await;
            super::$case(provider, remote).await;
        }
    )*};
}

conformance! {
    fixture => {
        let fixture = Arc::new(FixtureProvider::with_page_size(2));
        (fixture.clone() as SharedProvider, Arc::new(Fixture(fixture)) as Arc<dyn Remote>)
    };
    google => {
        let standin = GoogleStandin::start(2).await;
        (standin.provider(), Arc::new(standin) as Arc<dyn Remote>)
    };
}

#[tokio::test]
async fn one_access_token_serves_many_calls_and_a_revoked_one_is_renewed_once() {
    let standin = GoogleStandin::start(50).await;
    let provider = standin.provider();
    for _ in 0..3 {
        provider.list_calendars("mei").await.expect("calendars");
    }
    assert_eq!(standin.tokens_issued(), 1);
    standin.revoke_access_token();
    provider
        .list_calendars("mei")
        .await
        .expect("renewed and retried");
    assert_eq!(standin.tokens_issued(), 2);
}

#[tokio::test]
async fn a_refused_refresh_token_is_not_retryable_and_not_logged() {
    let standin = GoogleStandin::start(50).await;
    let provider = GoogleCalendar::new(
        &standin.config(),
        RefreshTokens::SingleTenant(SecretString::from("1//revoked-refresh-token")),
    )
    .expect("adapter");
    assert!(!format!("{provider:?}").contains("revoked-refresh-token"));
    let err = provider.list_calendars("mei").await.expect_err("refused");
    assert!(matches!(err, ProviderError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains("revoked-refresh-token"), "{err}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_can_be_retried_and_bad_requests_cannot() {
    let standin = GoogleStandin::start(50).await;
    let provider = standin.provider();
    for (status, retryable) in [(500, true), (503, true), (429, true), (400, false)] {
        standin.fail_lists_with(Some(status));
        let err = provider
            .list_events("mei", "primary", None, None)
            .await
            .expect_err("failing");
        assert_eq!(err.is_retryable(), retryable, "{status}: {err:?}");
    }
    standin.fail_lists_with(None);
    provider
        .list_events("mei", "primary", None, None)
        .await
        .expect("works again");
}

#[tokio::test]
async fn an_unreachable_api_is_retryable() {
    let mut config = GoogleStandin::start(50).await.config();
    let dead = celeriac_testkit::dead_address();
    config.oauth.token_url = format!("http://{dead}/token");
    let provider = GoogleCalendar::new(
        &config,
        RefreshTokens::SingleTenant(SecretString::from(support::REFRESH_TOKEN)),
    )
    .expect("adapter");
    let err = provider
        .list_events("mei", "primary", None, None)
        .await
        .expect_err("down");
    assert!(err.is_retryable(), "{err:?}");
}
