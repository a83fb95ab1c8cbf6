//! The calendar store port: watch channels, each user's sync state (the seed's
//! `calendar:sync_token:{user_id}`, kept without expiry: losing it costs a full resync),
//! the synced copy of each user's events and each user's sealed Google refresh token, with
//! the in-memory adapter (the embedded default). The PostgreSQL adapter is in [`crate::postgres`]; both pass
//! `tests/store.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keyring::Sealed;
use crate::secrets::TokenDigest;

/// A push-notification channel: Google posts to our webhook under this id whenever the
/// watched calendar changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The channel id we chose (a UUID), sent back in `X-Goog-Channel-ID`.
    pub id: String,
    /// Whose calendar it watches.
    pub user_id: String,
    /// Which of the user's calendars (`primary` unless set up otherwise).
    pub calendar_id: String,
    /// The provider's id of the watched resource (`X-Goog-Resource-ID`), needed to stop it.
    pub resource_id: String,
    /// SHA-256 of the token Google echoes in `X-Goog-Channel-Token`; the token itself is
    /// never stored.
    pub token_digest: TokenDigest,
    /// Where notifications are posted (kept so a renewal watches the same address).
    pub address: String,
    /// When the provider stops sending notifications on it.
    pub expires_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Highest `X-Goog-Message-Number` processed; older and equal numbers are ignored.
    pub last_message_number: Option<i64>,
    /// When a notification on it was last processed.
    pub last_notification_at: Option<DateTime<Utc>>,
}

/// Where a user's incremental sync stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// The user.
    pub user_id: String,
    /// The calendar synced.
    pub calendar_id: String,
    /// The provider's `nextSyncToken` from the last sync; `None` forces a full sync.
    #[serde(skip)]
    pub sync_token: Option<String>,
    /// Last successful sync.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Last full (re)sync.
    pub last_full_sync_at: Option<DateTime<Utc>>,
}

/// A start or end time, in Google's shape: `dateTime` for timed events, `date` for
/// all-day ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTime {
    /// Instant of a timed event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<DateTime<Utc>>,
    /// Day of an all-day event (`yyyy-mm-dd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// IANA zone the event was created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// One calendar event, in the subset of Google's `Event` resource this backend keeps
/// (same field names, so clients of the seed read the same JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEvent {
    /// Event id, unique within its calendar.
    pub id: String,
    /// `confirmed`, `tentative` or `cancelled` (a deletion, in an incremental sync).
    #[serde(default = "confirmed")]
    pub status: String,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Start.
    #[serde(default)]
    pub start: EventTime,
    /// End.
    #[serde(default)]
    pub end: EventTime,
    /// Last modification at the provider: of two versions of an event the later wins,
    /// whatever order their syncs finish in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    /// Link to the event in the provider's UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_link: Option<String>,
}

fn confirmed() -> String {
    "confirmed".into()
}

impl CalendarEvent {
    /// Whether this item reports a deletion.
    pub fn is_cancelled(&self) -> bool {
        self.status == "cancelled"
    }

    /// When it starts, for ordering (all-day events at midnight UTC).
    pub fn starts_at(&self) -> Option<DateTime<Utc>> {
        self.start.date_time.or_else(|| {
            let date = self.start.date.as_deref()?;
            DateTime::parse_from_rfc3339(&format!("{date}T00:00:00Z"))
                .ok()
                .map(|d| d.with_timezone(&Utc))
        })
    }

    /// Whether `self` may replace `stored`: not when it is an older version.
    fn supersedes(&self, stored: &Self) -> bool {
        match (self.updated, stored.updated) {
            (Some(incoming), Some(current)) => incoming >= current,
            _ => true,
        }
    }
}

/// A user's connection to their Google account: the refresh token, sealed under the key
/// ring ([`crate::keyring`]); the token itself is never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// Whose account.
    pub user_id: String,
    /// The refresh token, sealed (with the id of the key that sealed it).
    pub sealed: Sealed,
    /// The scopes Google granted, space-separated.
    pub scope: String,
    /// When the user connected.
    pub connected_at: DateTime<Utc>,
    /// When the token was last sealed (connect, or re-sealed under a newer key).
    pub sealed_at: DateTime<Utc>,
}

/// What one sync found, applied by [`CalendarStore::apply_sync`] in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncChanges {
    /// The user.
    pub user_id: String,
    /// The calendar.
    pub calendar_id: String,
    /// A full sync: every event of the user not in `upserts` is gone.
    pub full: bool,
    /// Events created or changed.
    pub upserts: Vec<CalendarEvent>,
    /// Ids of events deleted.
    pub deletions: Vec<String>,
    /// The token the next incremental sync starts from.
    pub sync_token: Option<String>,
    /// The notification processed, as (channel id, message number), if one triggered it.
    pub notification: Option<(String, i64)>,
}

/// What [`CalendarStore::apply_sync`] changed: the ids whose cache entries are now stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events written (an older version than the stored one is skipped, and not listed).
    pub upserted: Vec<String>,
    /// Events removed.
    pub deleted: Vec<String>,
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A channel with this id exists already.
    #[error("a channel with this id already exists")]
    DuplicateChannel,
    /// The database cannot be reached; retrying later can help.
    #[error("calendar store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request (a bug or a schema mismatch); retrying will not help.
    #[error("calendar store error: {0}")]
    Rejected(String),
}

impl StoreError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for celeriac_platform::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::DuplicateChannel => Self::Conflict(err.to_string()),
            StoreError::Unavailable(reason) => Self::Unavailable {
                component: "database",
                reason,
            },
            StoreError::Rejected(reason) => Self::internal(reason),
        }
    }
}

impl From<StoreError> for celeriac_tasks::TaskError {
    fn from(err: StoreError) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

/// Where channels, sync state and synced events live.
#[async_trait]
pub trait CalendarStore: Send + Sync + std::fmt::Debug {
    /// Stores a new channel; [`StoreError::DuplicateChannel`] if its id is taken.
    async fn put_channel(&self, channel: &Channel) -> Result<(), StoreError>;

    /// The channel with `id`.
    async fn channel(&self, id: &str) -> Result<Option<Channel>, StoreError>;

    /// The user's channels, soonest to expire first.
    async fn channels_of_user(&self, user_id: &str) -> Result<Vec<Channel>, StoreError>;

    /// Removes the channel with `id`, returning it if it existed.
    async fn remove_channel(&self, id: &str) -> Result<Option<Channel>, StoreError>;

    /// Channels expiring before `at`, soonest first, at most `limit`.
    async fn channels_expiring_before(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError>;

    /// The user's sync state.
    async fn sync_state(&self, user_id: &str) -> Result<Option<SyncState>, StoreError>;

    /// Applies a sync atomically: events upserted (an older version never replaces a
    /// newer one) and deleted (on a full sync, every event not listed), the sync token
    /// kept, and the notification's message number recorded on its channel (never
    /// lowered).
    async fn apply_sync(&self, changes: &SyncChanges) -> Result<Applied, StoreError>;

    /// The user's synced events, by start time.
    async fn events(&self, user_id: &str) -> Result<Vec<CalendarEvent>, StoreError>;

    /// One synced event.
    async fn event(
        &self,
        user_id: &str,
        event_id: &str,
    ) -> Result<Option<CalendarEvent>, StoreError>;

    /// Stores the user's credential, replacing any earlier one.
    async fn put_credential(&self, credential: &StoredCredential) -> Result<(), StoreError>;

    /// The user's credential.
    async fn credential(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError>;

    /// Replaces the sealed token with `resealed` only if it is still `expected` (so a
    /// re-sealing never overwrites a token the user connected meanwhile); returns whether
    /// it did.
    async fn reseal_credential(
        &self,
        user_id: &str,
        expected: &Sealed,
        resealed: &Sealed,
    ) -> Result<bool, StoreError>;

    /// Forgets the user's calendar in one step: credential, channels, sync state and
    /// synced events. Returns the credential it removed, if there was one.
    async fn forget_user(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError>;
}

/// The store as handlers and tasks hold it.
pub type SharedCalendarStore = Arc<dyn CalendarStore>;

#[derive(Debug, Default)]
struct Tables {
    channels: HashMap<String, Channel>,
    sync: HashMap<String, SyncState>,
    /// Per user, by event id.
    events: HashMap<String, BTreeMap<String, CalendarEvent>>,
    credentials: HashMap<String, StoredCredential>,
}

/// The calendar store in process memory, lost on restart: the embedded default of
/// `celeriac dev`.
#[derive(Debug, Default)]
pub struct MemoryCalendarStore {
    tables: Mutex<Tables>,
}

impl MemoryCalendarStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Every operation checks before it writes, so a panic cannot leave half an update.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn by_expiry(channels: &mut [Channel]) {
    channels.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then(a.id.cmp(&b.id)));
}

#[async_trait]
impl CalendarStore for MemoryCalendarStore {
    async fn put_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        let mut tables = self.lock();
        if tables.channels.contains_key(&channel.id) {
            return Err(StoreError::DuplicateChannel);
        }
        tables.channels.insert(channel.id.clone(), channel.clone());
        Ok(())
    }

    async fn channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
        Ok(self.lock().channels.get(id).cloned())
    }

    async fn channels_of_user(&self, user_id: &str) -> Result<Vec<Channel>, StoreError> {
        let mut found: Vec<Channel> = self
            .lock()
            .channels
            .values()
            .filter(|c| c.user_id == user_id)
            .cloned()
            .collect();
        by_expiry(&mut found);
        Ok(found)
    }

    async fn remove_channel(&self, id: &str) -> Result<Option<Channel>, StoreError> {
        Ok(self.lock().channels.remove(id))
    }

    async fn channels_expiring_before(
        &self,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Channel>, StoreError> {
        let mut found: Vec<Channel> = self
            .lock()
            .channels
            .values()
            .filter(|c| c.expires_at < at)
            .cloned()
            .collect();
        by_expiry(&mut found);
        found.truncate(limit);
        Ok(found)
    }

    async fn sync_state(&self, user_id: &str) -> Result<Option<SyncState>, StoreError> {
        Ok(self.lock().sync.get(user_id).cloned())
    }

    async fn apply_sync(&self, changes: &SyncChanges) -> Result<Applied, StoreError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let mut applied = Applied::default();
        let events = tables.events.entry(changes.user_id.clone()).or_default();
        if changes.full {
            let keep: std::collections::HashSet<&str> =
                changes.upserts.iter().map(|e| e.id.as_str()).collect();
            let gone: Vec<String> = events
                .keys()
                .filter(|id| !keep.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                events.remove(&id);
                applied.deleted.push(id);
            }
        }
        for event in &changes.upserts {
            if events.get(&event.id).is_none_or(|s| event.supersedes(s)) {
                events.insert(event.id.clone(), event.clone());
                applied.upserted.push(event.id.clone());
            }
        }
        for id in &changes.deletions {
            if events.remove(id).is_some() {
                applied.deleted.push(id.clone());
            }
        }
        let state = tables
            .sync
            .entry(changes.user_id.clone())
            .or_insert_with(|| SyncState {
                user_id: changes.user_id.clone(),
                calendar_id: changes.calendar_id.clone(),
                sync_token: None,
                last_synced_at: None,
                last_full_sync_at: None,
            });
        state.calendar_id.clone_from(&changes.calendar_id);
        state.sync_token.clone_from(&changes.sync_token);
        state.last_synced_at = Some(now);
        if changes.full {
            state.last_full_sync_at = Some(now);
        }
        if let Some((channel_id, number)) = &changes.notification
            && let Some(channel) = tables.channels.get_mut(channel_id)
        {
            channel.last_message_number = Some(
                channel
                    .last_message_number
                    .map_or(*number, |n| n.max(*number)),
            );
            channel.last_notification_at = Some(now);
        }
        applied.upserted.sort_unstable();
        applied.upserted.dedup();
        applied.deleted.sort_unstable();
        Ok(applied)
    }

    async fn events(&self, user_id: &str) -> Result<Vec<CalendarEvent>, StoreError> {
        let mut found: Vec<CalendarEvent> = self
            .lock()
            .events
            .get(user_id)
            .map(|events| events.values().cloned().collect())
            .unwrap_or_default();
        sort_by_start(&mut found);
        Ok(found)
    }

    async fn event(
        &self,
        user_id: &str,
        event_id: &str,
    ) -> Result<Option<CalendarEvent>, StoreError> {
        Ok(self
            .lock()
            .events
            .get(user_id)
            .and_then(|events| events.get(event_id))
            .cloned())
    }

    async fn put_credential(&self, credential: &StoredCredential) -> Result<(), StoreError> {
        self.lock()
            .credentials
            .insert(credential.user_id.clone(), credential.clone());
        Ok(())
    }

    async fn credential(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError> {
        Ok(self.lock().credentials.get(user_id).cloned())
    }

    async fn reseal_credential(
        &self,
        user_id: &str,
        expected: &Sealed,
        resealed: &Sealed,
    ) -> Result<bool, StoreError> {
        let mut tables = self.lock();
        match tables.credentials.get_mut(user_id) {
            Some(stored) if stored.sealed == *expected => {
                stored.sealed = resealed.clone();
                stored.sealed_at = Utc::now();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn forget_user(&self, user_id: &str) -> Result<Option<StoredCredential>, StoreError> {
        let mut tables = self.lock();
        tables.channels.retain(|_, c| c.user_id != user_id);
        tables.sync.remove(user_id);
        tables.events.remove(user_id);
        Ok(tables.credentials.remove(user_id))
    }
}

/// Start time first (undated last), then id: the order both adapters list events in.
pub(crate) fn sort_by_start(events: &mut [CalendarEvent]) {
    events.sort_by(|a, b| match (a.starts_at(), b.starts_at()) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    });
}
