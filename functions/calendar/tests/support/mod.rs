//! What the calendar's tests share: a local stand-in of the Google Calendar API and its
//! OAuth token endpoint, and a PostgreSQL schema per test.
//!
//! The stand-in answers with the shapes Google's API documents and returns (the same
//! fields, `kind`s, error bodies and status codes, recorded from the API reference): one
//! account, its calendars, events with a change log behind sync tokens, pages of a
//! configurable size, `410 Gone` for a sync token it has expired, `401` for an access
//! token it has revoked, and a switch that makes `events.list` fail with a status of the
//! test's choosing. Counters let tests assert how often the API was called.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use celeriac_calendar::provider::SharedProvider;
use celeriac_calendar::provider::google::{GoogleCalendar, GoogleConfig};
use celeriac_calendar::store::{CalendarEvent, EventTime};
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "1234567890-standin.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "GOCSPX-standin-secret";
pub const REFRESH_TOKEN: &str = "1//standin-refresh-token";

#[derive(Debug, Default)]
struct Entry {
    event: Value,
    changed_at: u64,
    deleted: bool,
}

#[derive(Debug, Default)]
struct Calendar {
    epoch: u64,
    version: u64,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
pub struct StandinChannel {
    pub resource_id: String,
    pub token: String,
    pub address: String,
    pub calendar_id: String,
}

#[derive(Debug, Default)]
struct StandinState {
    calendars: HashMap<String, Calendar>,
    channels: HashMap<String, StandinChannel>,
    access_token: Option<String>,
    tokens_issued: u32,
    list_calls: u32,
    fail_lists_with: Option<u16>,
    page_size: usize,
}

/// A running stand-in; its server stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct GoogleStandin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<StandinState>>,
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "error": {
                "errors": [{ "domain": "global", "reason": reason, "message": message }],
                "code": status.as_u16(),
                "message": message,
            }
        })),
    )
        .into_response()
}

fn rfc3339_ms(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl GoogleStandin {
    /// Starts on a free loopback port, listing `page_size` events a page.
    pub async fn start(page_size: usize) -> Self {
        let state = Arc::new(Mutex::new(StandinState {
            page_size,
            ..StandinState::default()
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/calendar/v3/calendars/{calendar}/events", get(list_events))
            .route(
                "/calendar/v3/calendars/{calendar}/events/watch",
                post(watch),
            )
            .route("/calendar/v3/channels/stop", post(stop))
            .route("/calendar/v3/users/me/calendarList", get(calendar_list))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StandinState> {
        self.state.lock().unwrap()
    }

    /// The Google settings pointing at this stand-in.
    pub fn config(&self) -> GoogleConfig {
        GoogleConfig {
            api_url: format!("{}/calendar/v3", self.url),
            token_url: format!("{}/token", self.url),
            client_id: CLIENT_ID.into(),
            client_secret: SecretString::from(CLIENT_SECRET),
            refresh_token: SecretString::from(REFRESH_TOKEN),
            timeout: Duration::from_secs(5),
        }
    }

    /// The Google adapter pointing at this stand-in.
    pub fn provider(&self) -> SharedProvider {
        Arc::new(GoogleCalendar::new(self.config()).unwrap())
    }

    /// Creates or changes an event as a user would in Google Calendar.
    pub fn put_event(&self, calendar_id: &str, id: &str, summary: &str, day: u32) {
        let mut state = self.lock();
        let calendar = state.calendars.entry(calendar_id.to_owned()).or_default();
        calendar.version += 1;
        let start = Utc.with_ymd_and_hms(2026, 3, day, 9, 30, 0).unwrap();
        let previous = calendar.entries.get(id).and_then(|e| {
            DateTime::parse_from_rfc3339(e.event["updated"].as_str()?)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        });
        let now = Utc::now();
        let updated = previous.map_or(now, |p| now.max(p + Span::milliseconds(1)));
        let event = json!({
            "kind": "calendar#event",
            "etag": format!("\"{}\"", 3_181_161_784_712_000_u64 + calendar.version),
            "id": id,
            "status": "confirmed",
            "htmlLink": format!("https://www.google.com/calendar/event?eid={id}"),
            "created": "2026-01-02T08:00:00.000Z",
            "updated": rfc3339_ms(updated),
            "summary": summary,
            "creator": { "email": "mei@example.com", "self": true },
            "organizer": { "email": "mei@example.com", "self": true },
            // Google sends the offset of the event's zone: the adapter keeps the instant.
            "start": { "dateTime": (start + Span::hours(1)).format("%Y-%m-%dT%H:%M:%S+01:00").to_string(), "timeZone": "Europe/Berlin" },
            "end": { "dateTime": (start + Span::hours(2)).format("%Y-%m-%dT%H:%M:%S+01:00").to_string(), "timeZone": "Europe/Berlin" },
            "iCalUID": format!("{id}@google.com"),
            "sequence": 0,
            "reminders": { "useDefault": true },
            "eventType": "default",
        });
        let version = calendar.version;
        calendar.entries.insert(
            id.to_owned(),
            Entry {
                event,
                changed_at: version,
                deleted: false,
            },
        );
    }

    /// Deletes an event.
    pub fn delete_event(&self, calendar_id: &str, id: &str) {
        let mut state = self.lock();
        let calendar = state.calendars.entry(calendar_id.to_owned()).or_default();
        calendar.version += 1;
        let version = calendar.version;
        if let Some(entry) = calendar.entries.get_mut(id) {
            entry.deleted = true;
            entry.changed_at = version;
            // What an incremental list returns for a deleted event: id and status only.
            entry.event = json!({
                "kind": "calendar#event",
                "etag": format!("\"{}\"", 3_181_161_784_712_000_u64 + version),
                "id": id,
                "status": "cancelled",
            });
        }
    }

    /// Makes every sync token of the calendar so far answer `410 Gone`.
    pub fn expire_sync_tokens(&self, calendar_id: &str) {
        self.lock()
            .calendars
            .entry(calendar_id.to_owned())
            .or_default()
            .epoch += 1;
    }

    /// Makes `events.list` answer `status` (None: work again).
    pub fn fail_lists_with(&self, status: Option<u16>) {
        self.lock().fail_lists_with = status;
    }

    /// Revokes the current access token: the next API call gets `401`.
    pub fn revoke_access_token(&self) {
        self.lock().access_token = None;
    }

    /// `events.list` calls so far (failed ones included).
    pub fn list_calls(&self) -> u32 {
        self.lock().list_calls
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u32 {
        self.lock().tokens_issued
    }

    /// A channel as `events.watch` created it (with the token Google keeps).
    pub fn channel(&self, id: &str) -> Option<StandinChannel> {
        self.lock().channels.get(id).cloned()
    }
}

type Shared = State<Arc<Mutex<StandinState>>>;

async fn token(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let valid = form.get("grant_type").map(String::as_str) == Some("refresh_token")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        && form.get("refresh_token").map(String::as_str) == Some(REFRESH_TOKEN);
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "error_description": "Bad Request" })),
        )
            .into_response();
    }
    let mut state = state.lock().unwrap();
    state.tokens_issued += 1;
    let access = format!("ya29.standin-{}", state.tokens_issued);
    state.access_token = Some(access.clone());
    Json(json!({
        "access_token": access,
        "expires_in": 3599,
        "scope": "https://www.googleapis.com/auth/calendar",
        "token_type": "Bearer",
    }))
    .into_response()
}

fn authorized(state: &StandinState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    matches!((presented, &state.access_token), (Some(p), Some(current)) if p == current)
}

fn unauthorized() -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "authError",
        "Request had invalid authentication credentials.",
    )
}

async fn list_events(
    State(state): Shared,
    Path(calendar_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    state.list_calls += 1;
    if let Some(status) = state.fail_lists_with {
        let status = StatusCode::from_u16(status).unwrap();
        return google_error(status, "backendError", "Backend Error");
    }
    let page_size = query
        .get("maxResults")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(250)
        .min(state.page_size);
    let calendar = state.calendars.entry(calendar_id).or_default();
    let since = match query.get("syncToken") {
        Some(token) => {
            let parsed = token
                .strip_prefix("CPjv")
                .and_then(|rest| rest.split_once('_'))
                .and_then(|(epoch, version)| {
                    Some((epoch.parse::<u64>().ok()?, version.parse::<u64>().ok()?))
                });
            match parsed {
                Some((epoch, version))
                    if epoch == calendar.epoch && version <= calendar.version =>
                {
                    Some(version)
                }
                _ => {
                    return google_error(
                        StatusCode::GONE,
                        "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.",
                    );
                }
            }
        }
        None => None,
    };
    let offset = query
        .get("pageToken")
        .and_then(|p| p.strip_prefix("EjYK"))
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let matching: Vec<&Entry> = calendar
        .entries
        .values()
        .filter(|e| match since {
            Some(since) => e.changed_at > since,
            None => !e.deleted,
        })
        .collect();
    let end = (offset + page_size).min(matching.len());
    let items: Vec<Value> = matching[offset.min(end)..end]
        .iter()
        .map(|e| e.event.clone())
        .collect();
    let mut body = json!({
        "kind": "calendar#events",
        "etag": "\"p33c9hvdtsnu8o0o\"",
        "summary": "mei@example.com",
        "updated": rfc3339_ms(Utc::now()),
        "timeZone": "Europe/Berlin",
        "accessRole": "owner",
        "defaultReminders": [{ "method": "popup", "minutes": 10 }],
        "items": items,
    });
    if end < matching.len() {
        body["nextPageToken"] = json!(format!("EjYK{end}"));
    } else {
        body["nextSyncToken"] = json!(format!("CPjv{}_{}", calendar.epoch, calendar.version));
    }
    Json(body).into_response()
}

async fn watch(
    State(state): Shared,
    Path(calendar_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = state.lock().unwrap();
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let (Some(id), Some(address), Some("web_hook")) = (
        body["id"].as_str(),
        body["address"].as_str(),
        body["type"].as_str(),
    ) else {
        return google_error(StatusCode::BAD_REQUEST, "required", "Required");
    };
    if state.channels.contains_key(id) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "channelIdNotUnique",
            &format!("Channel id {id} not unique"),
        );
    }
    let ttl: i64 = body["params"]["ttl"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(604_800);
    let expiration = Utc::now() + Span::seconds(ttl);
    let resource_id = format!("o3hgv1538sdjfh{}", state.channels.len());
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    state.channels.insert(
        id.to_owned(),
        StandinChannel {
            resource_id: resource_id.clone(),
            token: token.clone(),
            address: address.to_owned(),
            calendar_id: calendar_id.clone(),
        },
    );
    Json(json!({
        "kind": "api#channel",
        "id": id,
        "resourceId": resource_id,
        "resourceUri": format!("https://www.googleapis.com/calendar/v3/calendars/{calendar_id}/events?alt=json"),
        "token": token,
        "expiration": expiration.timestamp_millis().to_string(),
    }))
    .into_response()
}

async fn stop(State(state): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut state = state.lock().unwrap();
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let id = body["id"].as_str().unwrap_or_default();
    let resource = body["resourceId"].as_str().unwrap_or_default();
    match state.channels.get(id) {
        Some(c) if c.resource_id == resource => {
            state.channels.remove(id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => google_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!("Channel '{id}' not found for project '1234567890'"),
        ),
    }
}

async fn calendar_list(State(state): Shared, headers: HeaderMap) -> Response {
    let state = state.lock().unwrap();
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(json!({
        "kind": "calendar#calendarList",
        "etag": "\"p32g9nb5bt6fva0g\"",
        "nextSyncToken": "CKCbrKvpn_4CEhBtZWlAZXhhbXBsZS5jb20=",
        "items": [
            {
                "kind": "calendar#calendarListEntry",
                "etag": "\"1678890000000000\"",
                "id": "mei@example.com",
                "summary": "mei@example.com",
                "timeZone": "Europe/Berlin",
                "colorId": "14",
                "backgroundColor": "#9fe1e7",
                "foregroundColor": "#000000",
                "selected": true,
                "accessRole": "owner",
                "defaultReminders": [{ "method": "popup", "minutes": 10 }],
                "primary": true
            },
            {
                "kind": "calendar#calendarListEntry",
                "etag": "\"1678890000000001\"",
                "id": "en.german#holiday@group.v.calendar.google.com",
                "summary": "Holidays in Germany",
                "timeZone": "Europe/Berlin",
                "accessRole": "reader",
                "defaultReminders": []
            }
        ]
    }))
    .into_response()
}

/// A PostgreSQL pool whose connections use a schema of their own (migrated), so a test's
/// rows and global queries (channels expiring) meet no other test's.
pub async fn postgres_pool() -> Option<celeriac_db::PgPool> {
    let config = celeriac_testkit::database_in_fresh_schema("calendar").await?;
    let pool = celeriac_db::connect(&config).await.unwrap();
    celeriac_db::migrate(&pool).await.unwrap();
    Some(pool)
}

/// An event in the port's shape (for store tests).
pub fn event(id: &str, summary: &str, hour: u32, updated_minute: u32) -> CalendarEvent {
    let start = Utc.with_ymd_and_hms(2026, 2, 2, hour, 0, 0).unwrap();
    CalendarEvent {
        id: id.into(),
        status: "confirmed".into(),
        summary: Some(summary.into()),
        description: None,
        location: None,
        start: EventTime {
            date_time: Some(start),
            date: None,
            time_zone: Some("UTC".into()),
        },
        end: EventTime {
            date_time: Some(start + Span::hours(1)),
            date: None,
            time_zone: Some("UTC".into()),
        },
        updated: Some(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, updated_minute, 0)
                .unwrap(),
        ),
        html_link: None,
    }
}
