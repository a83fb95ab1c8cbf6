//! The fixture provider: a small Google Calendar in process memory, the embedded default
//! of `celeriac dev`.
//!
//! Every user has a `primary` calendar seeded with the same three events (their days
//! derived from the user id, so two users differ but a user always starts the same) and
//! an empty second calendar whose id is derived from the user id
//! ([`second_calendar_id`]), so one user's calendar ids are not another's. Sync tokens and paging behave as Google's: a full list ends
//! with a sync token, a list with that token returns only what changed since (deletions
//! as `cancelled` items), and [`FixtureProvider::expire_sync_tokens`] makes old tokens
//! answer [`ProviderError::SyncTokenExpired`], as Google's `410 Gone`.
//!
//! Changing an event ([`FixtureProvider::put_event`], [`FixtureProvider::delete_event`])
//! returns the notifications Google would post to each channel watching that calendar,
//! so a developer can post them to the webhook by hand.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{CalendarProvider, CalendarSummary, EventPage, ProviderError, WatchRequest, Watched};
use crate::store::{CalendarEvent, EventTime};

/// Items per page unless set otherwise.
const DEFAULT_PAGE_SIZE: usize = 50;

/// The id of the second calendar a fixture user has: `tea-club-` and 8 hex digits of the
/// user id's SHA-256.
pub fn second_calendar_id(user_id: &str) -> String {
    format!("tea-club-{}", hex::encode(&seed_of(user_id)[..4]))
}

/// A notification as Google posts it: the headers of the webhook request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Where it would be posted.
    #[serde(skip)]
    pub address: String,
    /// `X-Goog-Channel-ID`.
    #[serde(rename = "X-Goog-Channel-ID")]
    pub channel_id: String,
    /// `X-Goog-Channel-Token`.
    #[serde(rename = "X-Goog-Channel-Token")]
    pub token: String,
    /// `X-Goog-Resource-ID`.
    #[serde(rename = "X-Goog-Resource-ID")]
    pub resource_id: String,
    /// `X-Goog-Resource-State`: `sync` when a channel starts, `exists` after a change.
    #[serde(rename = "X-Goog-Resource-State")]
    pub resource_state: String,
    /// `X-Goog-Message-Number`.
    #[serde(rename = "X-Goog-Message-Number")]
    pub message_number: String,
}

#[derive(Debug, Clone)]
struct FixtureChannel {
    user_id: String,
    calendar_id: String,
    token: String,
    resource_id: String,
    address: String,
    expires_at: DateTime<Utc>,
    message_number: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    event: CalendarEvent,
    changed_at: u64,
    deleted: bool,
}

#[derive(Debug, Default)]
struct FixtureCalendar {
    /// Bumped by [`FixtureProvider::expire_sync_tokens`]: tokens of an older epoch are gone.
    epoch: u64,
    version: u64,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct State {
    calendars: HashMap<(String, String), FixtureCalendar>,
    channels: HashMap<String, FixtureChannel>,
}

/// The fixture provider.
#[derive(Debug)]
pub struct FixtureProvider {
    state: Mutex<State>,
    page_size: usize,
}

impl Default for FixtureProvider {
    fn default() -> Self {
        Self::new()
    }
}

fn seed_of(user_id: &str) -> [u8; 32] {
    Sha256::digest(user_id.as_bytes()).into()
}

fn at(day: DateTime<Utc>, hour: i64, minute: i64) -> EventTime {
    EventTime {
        date_time: Some(day + Duration::hours(hour) + Duration::minutes(minute)),
        date: None,
        time_zone: Some("UTC".into()),
    }
}

/// The events every user's primary calendar starts with.
fn seeded_events(user_id: &str) -> Vec<CalendarEvent> {
    let seed = seed_of(user_id);
    // A Monday in 2026, shifted by up to six days per user.
    let first = Utc
        .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::days(i64::from(seed[0] % 7));
    let updated = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let garden = (first + Duration::days(5)).format("%Y-%m-%d").to_string();
    let garden_end = (first + Duration::days(6)).format("%Y-%m-%d").to_string();
    let event = |id: &str, summary: &str, start: EventTime, end: EventTime| CalendarEvent {
        id: id.into(),
        status: "confirmed".into(),
        summary: Some(summary.into()),
        description: None,
        location: None,
        start,
        end,
        updated: Some(updated),
        html_link: None,
    };
    vec![
        event(
            "tea-tasting",
            "Tea tasting",
            at(first, 10, 0),
            at(first, 11, 0),
        ),
        event(
            "weekly-review",
            "Weekly review",
            at(first + Duration::days(1), 15, 0),
            at(first + Duration::days(1), 15, 30),
        ),
        event(
            "garden-day",
            "Garden day",
            EventTime {
                date: Some(garden),
                ..EventTime::default()
            },
            EventTime {
                date: Some(garden_end),
                ..EventTime::default()
            },
        ),
    ]
}

impl FixtureProvider {
    /// Calendars with the default page size.
    pub fn new() -> Self {
        Self::with_page_size(DEFAULT_PAGE_SIZE)
    }

    /// Calendars listed `page_size` events a page (at least 1).
    pub fn with_page_size(page_size: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            page_size: page_size.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every operation checks before it writes, so a panic cannot leave half an update.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces an event (keeping `updated` increasing); returns the
    /// notifications for the channels watching the calendar.
    pub fn put_event(
        &self,
        user_id: &str,
        calendar_id: &str,
        mut event: CalendarEvent,
    ) -> Vec<Notification> {
        let mut state = self.lock();
        let calendar = calendar_of(&mut state, user_id, calendar_id);
        calendar.version += 1;
        let previous = calendar
            .entries
            .get(&event.id)
            .and_then(|e| e.event.updated);
        let now = Utc::now();
        event.updated = Some(previous.map_or(now, |p| now.max(p + Duration::milliseconds(1))));
        event.status = "confirmed".into();
        let version = calendar.version;
        calendar.entries.insert(
            event.id.clone(),
            Entry {
                event,
                changed_at: version,
                deleted: false,
            },
        );
        notify(&mut state, user_id, calendar_id)
    }

    /// The event as the calendar holds it now.
    pub fn event(&self, user_id: &str, calendar_id: &str, event_id: &str) -> Option<CalendarEvent> {
        let mut state = self.lock();
        calendar_of(&mut state, user_id, calendar_id)
            .entries
            .get(event_id)
            .filter(|e| !e.deleted)
            .map(|e| e.event.clone())
    }

    /// Deletes an event; `None` when there is no such event.
    pub fn delete_event(
        &self,
        user_id: &str,
        calendar_id: &str,
        event_id: &str,
    ) -> Option<Vec<Notification>> {
        let mut state = self.lock();
        let calendar = calendar_of(&mut state, user_id, calendar_id);
        let entry = calendar.entries.get_mut(event_id).filter(|e| !e.deleted)?;
        calendar.version += 1;
        entry.deleted = true;
        entry.changed_at = calendar.version;
        entry.event.status = "cancelled".into();
        Some(notify(&mut state, user_id, calendar_id))
    }

    /// Makes every sync token of the calendar so far invalid, as Google does now and then.
    pub fn expire_sync_tokens(&self, user_id: &str, calendar_id: &str) {
        let mut state = self.lock();
        calendar_of(&mut state, user_id, calendar_id).epoch += 1;
    }
}

fn calendar_of<'a>(
    state: &'a mut State,
    user_id: &str,
    calendar_id: &str,
) -> &'a mut FixtureCalendar {
    state
        .calendars
        .entry((user_id.to_owned(), calendar_id.to_owned()))
        .or_insert_with(|| {
            let mut calendar = FixtureCalendar::default();
            if calendar_id == "primary" {
                for event in seeded_events(user_id) {
                    calendar.entries.insert(
                        event.id.clone(),
                        Entry {
                            event,
                            changed_at: 0,
                            deleted: false,
                        },
                    );
                }
            }
            calendar
        })
}

fn notify(state: &mut State, user_id: &str, calendar_id: &str) -> Vec<Notification> {
    let now = Utc::now();
    let mut sent: Vec<Notification> = state
        .channels
        .iter_mut()
        .filter(|(_, c)| c.user_id == user_id && c.calendar_id == calendar_id && c.expires_at > now)
        .map(|(id, c)| {
            c.message_number += 1;
            Notification {
                address: c.address.clone(),
                channel_id: id.clone(),
                token: c.token.clone(),
                resource_id: c.resource_id.clone(),
                resource_state: "exists".into(),
                message_number: c.message_number.to_string(),
            }
        })
        .collect();
    sent.sort_by(|a, b| a.channel_id.cmp(&b.channel_id));
    sent
}

fn resource_id(user_id: &str, calendar_id: &str) -> String {
    let digest = Sha256::digest(format!("{user_id}\n{calendar_id}").as_bytes());
    format!("fixture-{}", hex::encode(&digest[..8]))
}

fn current_sync_token(calendar: &FixtureCalendar) -> String {
    format!("fixture-{}-{}", calendar.epoch, calendar.version)
}

/// The version a token of the calendar's current epoch stands for.
fn version_of(calendar: &FixtureCalendar, token: &str) -> Option<u64> {
    let rest = token.strip_prefix("fixture-")?;
    let (epoch, version) = rest.split_once('-')?;
    let version: u64 = version.parse().ok()?;
    (epoch.parse::<u64>().ok()? == calendar.epoch && version <= calendar.version).then_some(version)
}

#[async_trait]
impl CalendarProvider for FixtureProvider {
    fn adapter(&self) -> &'static str {
        "fixture"
    }

    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watched, ProviderError> {
        let mut state = self.lock();
        if state.channels.contains_key(request.channel_id) {
            return Err(ProviderError::Rejected(format!(
                "channel id {} is not unique",
                request.channel_id
            )));
        }
        let resource_id = resource_id(request.user_id, request.calendar_id);
        let expires_at = Utc::now() + Duration::from_std(request.ttl).unwrap_or(Duration::days(7));
        // Creating the channel is its first message (Google's `sync`), number 1.
        state.channels.insert(
            request.channel_id.to_owned(),
            FixtureChannel {
                user_id: request.user_id.to_owned(),
                calendar_id: request.calendar_id.to_owned(),
                token: request.token.to_owned(),
                resource_id: resource_id.clone(),
                address: request.address.to_owned(),
                expires_at,
                message_number: 1,
            },
        );
        Ok(Watched {
            resource_id,
            expires_at,
        })
    }

    async fn stop(
        &self,
        user_id: &str,
        channel_id: &str,
        resource_id: &str,
    ) -> Result<(), ProviderError> {
        let mut state = self.lock();
        match state.channels.get(channel_id) {
            Some(c) if c.resource_id == resource_id && c.user_id == user_id => {
                state.channels.remove(channel_id);
                Ok(())
            }
            _ => Err(ProviderError::NotFound(format!("channel {channel_id}"))),
        }
    }

    async fn list_events(
        &self,
        user_id: &str,
        calendar_id: &str,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let mut state = self.lock();
        let calendar = calendar_of(&mut state, user_id, calendar_id);
        let since = match sync_token {
            Some(token) => {
                Some(version_of(calendar, token).ok_or(ProviderError::SyncTokenExpired)?)
            }
            None => None,
        };
        let offset = match page_token {
            Some(page) => page
                .parse::<usize>()
                .map_err(|_| ProviderError::Rejected("invalid page token".into()))?,
            None => 0,
        };
        let matching: Vec<&Entry> = calendar
            .entries
            .values()
            .filter(|e| match since {
                Some(since) => e.changed_at > since,
                None => !e.deleted,
            })
            .collect();
        let end = (offset + self.page_size).min(matching.len());
        let items = matching
            .get(offset..end)
            .unwrap_or_default()
            .iter()
            .map(|e| e.event.clone())
            .collect();
        let last = end >= matching.len();
        Ok(EventPage {
            items,
            next_page_token: (!last).then(|| end.to_string()),
            next_sync_token: last.then(|| current_sync_token(calendar)),
        })
    }

    async fn list_calendars(&self, user_id: &str) -> Result<Vec<CalendarSummary>, ProviderError> {
        Ok(vec![
            CalendarSummary {
                id: "primary".into(),
                summary: user_id.to_owned(),
                time_zone: Some("UTC".into()),
                primary: true,
                access_role: Some("owner".into()),
            },
            CalendarSummary {
                id: second_calendar_id(user_id),
                summary: "Tea club".into(),
                time_zone: Some("UTC".into()),
                primary: false,
                access_role: Some("reader".into()),
            },
        ])
    }

    async fn disconnect(&self, _user_id: &str) -> Result<bool, ProviderError> {
        // Fixture calendars need no account, so there is nothing to revoke.
        Ok(false)
    }
}
