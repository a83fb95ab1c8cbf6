//! The calendar provider port: what this backend asks of Google Calendar (watch a
//! calendar, stop a channel, list events incrementally, list calendars), with two adapters:
//!
//! - [`google`]: Google Calendar API v3 over HTTPS, each user's calls made with that
//!   user's own OAuth access token, refreshed through a configurable token endpoint;
//! - [`fixture`]: deterministic calendars in memory, the embedded default of
//!   `celeriac dev`, with a way to change an event and get the notification Google would
//!   send.
//!
//! Both pass `tests/provider.rs` (the Google adapter against a local stand-in of the API).

pub mod fixture;
pub mod google;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::CalendarEvent;

/// What a watch request asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest<'a> {
    /// Whose calendar.
    pub user_id: &'a str,
    /// Which calendar.
    pub calendar_id: &'a str,
    /// The channel id we chose.
    pub channel_id: &'a str,
    /// The token the provider echoes on every notification.
    pub token: &'a str,
    /// Where to post notifications.
    pub address: &'a str,
    /// Requested lifetime (the provider may grant less).
    pub ttl: std::time::Duration,
}

/// A channel the provider created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The provider's id of the watched resource.
    pub resource_id: String,
    /// When the provider stops notifying.
    pub expires_at: DateTime<Utc>,
}

/// One page of `events.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    /// Changed events; `status: cancelled` items are deletions.
    pub items: Vec<CalendarEvent>,
    /// Set when more pages follow.
    pub next_page_token: Option<String>,
    /// Set on the last page: where the next incremental sync starts.
    pub next_sync_token: Option<String>,
}

/// One entry of the user's calendar list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarSummary {
    /// Calendar id (`primary` resolves to the account's address at Google).
    pub id: String,
    /// Title.
    #[serde(default)]
    pub summary: String,
    /// Time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Whether it is the account's primary calendar.
    #[serde(default)]
    pub primary: bool,
    /// The account's role on it (`owner`, `writer`, `reader`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_role: Option<String>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The sync token is no longer valid (Google's `410 Gone`): sync everything again.
    #[error("sync token expired; a full sync is required")]
    SyncTokenExpired,
    /// The calendar or channel does not exist (or is not the account's).
    #[error("not found at the calendar provider: {0}")]
    NotFound(String),
    /// The provider failed, was slow, or limited us: a later attempt can help.
    #[error("calendar provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (bad credentials, bad request): retrying will not
    /// help until configuration changes.
    #[error("calendar provider refused the request: {0}")]
    Rejected(String),
    /// The user has not connected a Google account: nothing to call the provider with.
    #[error("{0}")]
    NotConnected(String),
}

impl ProviderError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<ProviderError> for celeriac_platform::Error {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::NotFound(what) => Self::NotFound(what),
            ProviderError::NotConnected(what) => Self::Conflict(what),
            ProviderError::Unavailable(reason) => Self::Unavailable {
                component: "calendar provider",
                reason,
            },
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<ProviderError> for celeriac_tasks::TaskError {
    fn from(err: ProviderError) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

/// A calendar provider.
#[async_trait]
pub trait CalendarProvider: Send + Sync + std::fmt::Debug {
    /// The adapter's name, for logs.
    fn adapter(&self) -> &'static str;

    /// Watches a calendar's events (Google's `events.watch`).
    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watched, ProviderError>;

    /// Stops a channel of `user_id` (Google's `channels.stop`); [`ProviderError::NotFound`]
    /// when the provider does not know it (already stopped or expired).
    async fn stop(
        &self,
        user_id: &str,
        channel_id: &str,
        resource_id: &str,
    ) -> Result<(), ProviderError>;

    /// One page of a calendar's events (Google's `events.list`): everything when
    /// `sync_token` is `None`, else what changed since it.
    async fn list_events(
        &self,
        user_id: &str,
        calendar_id: &str,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, ProviderError>;

    /// The user's calendars (Google's `calendarList.list`).
    async fn list_calendars(&self, user_id: &str) -> Result<Vec<CalendarSummary>, ProviderError>;

    /// Gives up the user's access: revokes their own token at the provider, if they have
    /// one, and forgets any kept access token. Returns whether a token was revoked.
    async fn disconnect(&self, user_id: &str) -> Result<bool, ProviderError>;
}

/// The provider as handlers and tasks hold it.
pub type SharedProvider = Arc<dyn CalendarProvider>;
