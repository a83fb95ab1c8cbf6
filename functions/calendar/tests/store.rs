//! One conformance suite for the calendar store port, run against the in-memory adapter
//! and PostgreSQL. Each PostgreSQL case gets a schema of its own: the expiring-channels
//! query is global by design, so cases sharing tables would see each other's channels.

mod support;

use std::sync::Arc;

use celeriac_calendar::keyring::Sealed;
use celeriac_calendar::postgres::PgCalendarStore;
use celeriac_calendar::secrets::ChannelToken;
use celeriac_calendar::store::{
    Channel, MemoryCalendarStore, SharedCalendarStore, StoreError, StoredCredential, SyncChanges,
};
use chrono::{DateTime, Duration, Utc};
use support::event;

async fn postgres() -> Option<SharedCalendarStore> {
    let pool = support::postgres_pool().await?;
    Some(Arc::new(PgCalendarStore::new(pool)))
}

/// Whole microseconds: what PostgreSQL keeps.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).expect("in range")
}

fn channel(id: &str, user: &str, expires_in: Duration) -> Channel {
    let now = Utc::now();
    Channel {
        id: id.into(),
        user_id: user.into(),
        calendar_id: "primary".into(),
        resource_id: format!("res-{id}"),
        token_digest: ChannelToken::generate().digest(),
        address: "https://api.example.test/webhook/google-calendar".into(),
        expires_at: micros(now + expires_in),
        created_at: micros(now),
        last_message_number: None,
        last_notification_at: None,
    }
}

fn changes(user: &str) -> SyncChanges {
    SyncChanges {
        user_id: user.into(),
        calendar_id: "primary".into(),
        full: false,
        upserts: Vec::new(),
        deletions: Vec::new(),
        sync_token: None,
        notification: None,
    }
}

async fn channels_are_stored_listed_and_removed(store: SharedCalendarStore) {
    let a = channel("ch-a", "mei", Duration::days(3));
    let b = channel("ch-b", "mei", Duration::days(1));
    let other = channel("ch-c", "kai", Duration::days(2));
    for c in [&a, &b, &other] {
        store.put_channel(c).await.expect("put");
    }
    let again = store.put_channel(&a).await;
    assert!(
        matches!(again, Err(StoreError::DuplicateChannel)),
        "{again:?}"
    );
    assert_eq!(store.channel("ch-a").await.expect("get"), Some(a.clone()));
    assert!(
        store
            .channel("ch-a")
            .await
            .expect("get")
            .expect("a")
            .token_digest
            == a.token_digest
    );
    assert_eq!(store.channel("nope").await.expect("get"), None);
    let mine = store.channels_of_user("mei").await.expect("list");
    assert_eq!(mine, vec![b.clone(), a.clone()], "soonest to expire first");
    assert_eq!(store.remove_channel("ch-b").await.expect("remove"), Some(b));
    assert_eq!(store.remove_channel("ch-b").await.expect("remove"), None);
    assert_eq!(store.channels_of_user("mei").await.expect("list"), vec![a]);
}

async fn expiring_channels_come_soonest_first_and_bounded(store: SharedCalendarStore) {
    let soon = channel("soon", "mei", Duration::hours(2));
    let sooner = channel("sooner", "kai", Duration::hours(1));
    let past = channel("past", "lin", -Duration::hours(1));
    let later = channel("later", "mei", Duration::days(6));
    for c in [&soon, &sooner, &past, &later] {
        store.put_channel(c).await.expect("put");
    }
    let horizon = Utc::now() + Duration::days(1);
    let expiring = store
        .channels_expiring_before(horizon, 10)
        .await
        .expect("expiring");
    let ids: Vec<&str> = expiring.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["past", "sooner", "soon"]);
    let first = store
        .channels_expiring_before(horizon, 1)
        .await
        .expect("expiring");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "past");
}

async fn an_incremental_sync_upserts_deletes_and_keeps_the_token(store: SharedCalendarStore) {
    assert_eq!(store.sync_state("mei").await.expect("state"), None);
    let mut first = changes("mei");
    first.full = true;
    first.upserts = vec![
        event("b", "Second", 11, 0),
        event("a", "First", 9, 0),
        event("c", "Third", 14, 0),
    ];
    first.sync_token = Some("token-1".into());
    let applied = store.apply_sync(&first).await.expect("apply");
    assert_eq!(applied.upserted, ["a", "b", "c"]);
    assert!(applied.deleted.is_empty());
    let events = store.events("mei").await.expect("events");
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"], "by start time");
    let state = store.sync_state("mei").await.expect("state").expect("kept");
    assert_eq!(state.sync_token.as_deref(), Some("token-1"));
    assert!(state.last_full_sync_at.is_some() && state.last_synced_at.is_some());

    let mut next = changes("mei");
    next.upserts = vec![event("b", "Second, moved", 8, 5)];
    next.deletions = vec!["c".into(), "never-existed".into()];
    next.sync_token = Some("token-2".into());
    let applied = store.apply_sync(&next).await.expect("apply");
    assert_eq!(applied.upserted, ["b"]);
    assert_eq!(applied.deleted, ["c"]);
    let events = store.events("mei").await.expect("events");
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(
        store
            .event("mei", "b")
            .await
            .expect("get")
            .expect("b")
            .summary
            .as_deref(),
        Some("Second, moved")
    );
    assert_eq!(store.event("mei", "c").await.expect("get"), None);
    assert_eq!(
        store.event("kai", "a").await.expect("get"),
        None,
        "per user"
    );
    let state = store.sync_state("mei").await.expect("state").expect("kept");
    assert_eq!(state.sync_token.as_deref(), Some("token-2"));
}

async fn an_older_version_never_replaces_a_newer_one(store: SharedCalendarStore) {
    let mut newer = changes("mei");
    newer.upserts = vec![event("a", "Newer", 9, 30)];
    store.apply_sync(&newer).await.expect("apply");
    // A sync that fetched earlier finishes later.
    let mut older = changes("mei");
    older.upserts = vec![event("a", "Older", 9, 10)];
    let applied = store.apply_sync(&older).await.expect("apply");
    assert!(applied.upserted.is_empty(), "{applied:?}");
    let kept = store.event("mei", "a").await.expect("get").expect("a");
    assert_eq!(kept.summary.as_deref(), Some("Newer"));
    // The same version again is harmless and counts as written.
    let applied = store.apply_sync(&newer).await.expect("apply");
    assert_eq!(applied.upserted, ["a"]);
    // Two versions of one event in one batch: the newer wins.
    let mut both = changes("mei");
    both.upserts = vec![event("d", "Later", 9, 50), event("d", "Earlier", 9, 40)];
    store.apply_sync(&both).await.expect("apply");
    let kept = store.event("mei", "d").await.expect("get").expect("d");
    assert_eq!(kept.summary.as_deref(), Some("Later"));
}

async fn a_full_sync_removes_what_it_does_not_list(store: SharedCalendarStore) {
    let mut first = changes("mei");
    first.upserts = vec![event("a", "A", 9, 0), event("b", "B", 10, 0)];
    store.apply_sync(&first).await.expect("apply");
    let mut other = changes("kai");
    other.upserts = vec![event("a", "Kai's A", 9, 0)];
    store.apply_sync(&other).await.expect("apply");

    let mut full = changes("mei");
    full.full = true;
    full.upserts = vec![event("b", "B", 10, 0), event("e", "E", 12, 0)];
    full.sync_token = Some("fresh".into());
    let applied = store.apply_sync(&full).await.expect("apply");
    assert_eq!(applied.deleted, ["a"]);
    assert_eq!(applied.upserted, ["b", "e"]);
    let ids: Vec<String> = store
        .events("mei")
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["b", "e"]);
    assert_eq!(
        store.events("kai").await.expect("events").len(),
        1,
        "other users untouched"
    );

    let mut empty = changes("mei");
    empty.full = true;
    let applied = store.apply_sync(&empty).await.expect("apply");
    assert_eq!(applied.deleted, ["b", "e"]);
    assert!(store.events("mei").await.expect("events").is_empty());
}

async fn message_numbers_only_go_up(store: SharedCalendarStore) {
    store
        .put_channel(&channel("ch", "mei", Duration::days(1)))
        .await
        .expect("put");
    let mut sync = changes("mei");
    sync.notification = Some(("ch".into(), 7));
    store.apply_sync(&sync).await.expect("apply");
    let stored = store.channel("ch").await.expect("get").expect("ch");
    assert_eq!(stored.last_message_number, Some(7));
    assert!(stored.last_notification_at.is_some());
    sync.notification = Some(("ch".into(), 5));
    store.apply_sync(&sync).await.expect("apply");
    assert_eq!(
        store
            .channel("ch")
            .await
            .expect("get")
            .expect("ch")
            .last_message_number,
        Some(7)
    );
    // A notification of a channel removed meanwhile changes nothing and fails nothing.
    sync.notification = Some(("gone".into(), 9));
    store.apply_sync(&sync).await.expect("apply");
}

fn credential(user: &str, key_id: &str, bytes: &[u8]) -> StoredCredential {
    let now = micros(Utc::now());
    StoredCredential {
        user_id: user.into(),
        sealed: Sealed {
            key_id: key_id.into(),
            bytes: bytes.to_vec(),
        },
        scope: "https://www.googleapis.com/auth/calendar.readonly".into(),
        connected_at: now,
        sealed_at: now,
    }
}

async fn credentials_are_per_user_and_replaced(store: SharedCalendarStore) {
    assert_eq!(store.credential("mei").await.expect("get"), None);
    let first = credential("mei", "k1", b"sealed-1");
    store.put_credential(&first).await.expect("put");
    store
        .put_credential(&credential("kai", "k1", b"sealed-kai"))
        .await
        .expect("put");
    assert_eq!(store.credential("mei").await.expect("get"), Some(first));
    let second = credential("mei", "k2", b"sealed-2");
    store.put_credential(&second).await.expect("replace");
    assert_eq!(store.credential("mei").await.expect("get"), Some(second));
    assert_eq!(
        store
            .credential("kai")
            .await
            .expect("get")
            .expect("kai")
            .sealed
            .bytes,
        b"sealed-kai"
    );
}

async fn a_reseal_happens_only_over_the_token_it_read(store: SharedCalendarStore) {
    let read = credential("mei", "old", b"sealed-old");
    store.put_credential(&read).await.expect("put");
    let moved = Sealed {
        key_id: "new".into(),
        bytes: b"sealed-new".to_vec(),
    };
    assert!(
        store
            .reseal_credential("mei", &read.sealed, &moved)
            .await
            .expect("reseal")
    );
    let stored = store.credential("mei").await.expect("get").expect("mei");
    assert_eq!(stored.sealed, moved);
    assert_eq!(stored.connected_at, read.connected_at);
    // The user connected again meanwhile: a reseal of the old token changes nothing.
    let reconnected = credential("mei", "new", b"sealed-reconnected");
    store.put_credential(&reconnected).await.expect("put");
    assert!(
        !store
            .reseal_credential("mei", &read.sealed, &moved)
            .await
            .expect("reseal")
    );
    assert_eq!(
        store
            .credential("mei")
            .await
            .expect("get")
            .expect("mei")
            .sealed,
        reconnected.sealed
    );
    assert!(
        !store
            .reseal_credential("nobody", &read.sealed, &moved)
            .await
            .expect("reseal")
    );
}

async fn forgetting_a_user_removes_only_their_calendar(store: SharedCalendarStore) {
    for user in ["mei", "kai"] {
        store
            .put_credential(&credential(user, "k1", b"sealed"))
            .await
            .expect("put");
        store
            .put_channel(&channel(&format!("ch-{user}"), user, Duration::days(2)))
            .await
            .expect("channel");
        let mut sync = changes(user);
        sync.upserts = vec![event("tea", "Tea", 9, 1)];
        sync.sync_token = Some("token".into());
        store.apply_sync(&sync).await.expect("sync");
    }
    let removed = store.forget_user("mei").await.expect("forget");
    assert_eq!(removed.map(|c| c.user_id).as_deref(), Some("mei"));
    assert_eq!(store.credential("mei").await.expect("get"), None);
    assert!(
        store
            .channels_of_user("mei")
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.sync_state("mei").await.expect("state"), None);
    assert!(store.events("mei").await.expect("events").is_empty());
    // Kai keeps everything.
    assert!(store.credential("kai").await.expect("get").is_some());
    assert_eq!(store.channels_of_user("kai").await.expect("list").len(), 1);
    assert!(store.sync_state("kai").await.expect("state").is_some());
    assert_eq!(store.events("kai").await.expect("events").len(), 1);
    assert_eq!(store.forget_user("mei").await.expect("again"), None);
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedCalendarStore> { $open }
            conformance!(@cases
                channels_are_stored_listed_and_removed,
                expiring_channels_come_soonest_first_and_bounded,
                an_incremental_sync_upserts_deletes_and_keeps_the_token,
                an_older_version_never_replaces_a_newer_one,
                a_full_sync_removes_what_it_does_not_list,
                message_numbers_only_go_up,
                credentials_are_per_user_and_replaced,
                a_reseal_happens_only_over_the_token_it_read,
                forgetting_a_user_removes_only_their_calendar);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test]
        async fn $case() {
            let Some(store) = store().await else { return };
            super::$case(store).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryCalendarStore::new()) as SharedCalendarStore);
    postgres => postgres().await;
}
