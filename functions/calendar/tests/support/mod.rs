//! What the calendar's tests share: a local stand-in of the Google Calendar API and its
//! OAuth endpoints (consent, token, revocation), and a PostgreSQL schema per test.
//!
//! The stand-in answers with the shapes Google's API documents and returns (the same
//! fields, `kind`s, error bodies and status codes, recorded from the API reference): its
//! calendars, events with a change log behind sync tokens, pages of a configurable size,
//! `410 Gone` for a sync token it has expired, `401` for an access token it has revoked,
//! and a switch that makes `events.list` fail with a status of the test's choosing.
//! Counters let tests assert how often the API was called.
//!
//! Its OAuth side plays Google's authorization server: `/authorize` consents at once (as
//! the user clicking "Allow") and redirects with a code bound to the PKCE challenge and
//! redirect URI; `/token` exchanges such a code (checking the verifier) for a new refresh
//! token, and refreshes access tokens; `/revoke` revokes a refresh token and its access
//! tokens. Every API call is recorded with the refresh token behind its access token, so a
//! test can tell whose account was used.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use celeriac_calendar::oauth::OAuthSettings;
use celeriac_calendar::provider::SharedProvider;
use celeriac_calendar::provider::google::{Accounts, GoogleCalendar, GoogleConfig, RefreshTokens};
use celeriac_calendar::store::{CalendarEvent, EventTime};
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

/// An authorization code as `/authorize` issued it.
#[derive(Debug, Clone)]
struct IssuedCode {
    challenge: String,
    redirect_uri: String,
    scope: String,
}

#[derive(Debug, Default)]
struct StandinState {
    calendars: HashMap<String, Calendar>,
    channels: HashMap<String, StandinChannel>,
    /// Live access tokens, each with the refresh token it came from.
    access_tokens: HashMap<String, String>,
    /// Refresh tokens issued by code exchange and not revoked.
    refresh_tokens: Vec<String>,
    /// Refresh tokens revoked at `/revoke`.
    revoked: Vec<String>,
    codes: HashMap<String, IssuedCode>,
    /// The refresh token behind each API call, in order.
    api_calls_by: Vec<String>,
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
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
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

    /// The OAuth endpoints of this stand-in.
    pub fn oauth_settings(&self) -> OAuthSettings {
        OAuthSettings {
            authorization_url: format!("{}/authorize", self.url),
            token_url: format!("{}/token", self.url),
            revoke_url: format!("{}/revoke", self.url),
            client_id: CLIENT_ID.into(),
            client_secret: SecretString::from(CLIENT_SECRET),
            timeout: Duration::from_secs(5),
        }
    }

    /// The Google settings pointing at this stand-in, in single-tenant mode (one account,
    /// [`REFRESH_TOKEN`], for every user).
    pub fn config(&self) -> GoogleConfig {
        GoogleConfig {
            api_url: format!("{}/calendar/v3", self.url),
            oauth: self.oauth_settings(),
            accounts: Accounts::SingleTenant(SecretString::from(REFRESH_TOKEN)),
        }
    }

    /// The Google adapter pointing at this stand-in, single-tenant.
    pub fn provider(&self) -> SharedProvider {
        Arc::new(
            GoogleCalendar::new(
                &self.config(),
                RefreshTokens::SingleTenant(SecretString::from(REFRESH_TOKEN)),
            )
            .unwrap(),
        )
    }

    /// Refresh tokens revoked so far.
    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.clone()
    }

    /// Refresh tokens issued by code exchange (revoked ones included).
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        let state = self.lock();
        state
            .refresh_tokens
            .iter()
            .chain(&state.revoked)
            .cloned()
            .collect()
    }

    /// The refresh token behind each API call so far.
    pub fn api_calls_by(&self) -> Vec<String> {
        self.lock().api_calls_by.clone()
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

    /// Revokes the current access tokens: the next API call gets `401`.
    pub fn revoke_access_token(&self) {
        self.lock().access_tokens.clear();
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

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// The consent page, as if the user allowed at once: a redirect with a fresh code.
async fn authorize(State(state): Shared, Query(query): Query<HashMap<String, String>>) -> Response {
    let get = |name: &str| query.get(name).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || get("redirect_uri").is_empty()
    {
        return oauth_error("invalid_request", "Required parameter is missing");
    }
    let mut state = state.lock().unwrap();
    let code = format!("4/0standin-code-{}", state.codes.len() + 1);
    state.codes.insert(
        code.clone(),
        IssuedCode {
            challenge: get("code_challenge"),
            redirect_uri: get("redirect_uri"),
            scope: get("scope"),
        },
    );
    let mut location = reqwest::Url::parse(&get("redirect_uri")).unwrap();
    location
        .query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("code", &code)
        .append_pair("scope", &get("scope"));
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn token(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return oauth_error("invalid_client", "The OAuth client was not found.");
    }
    let mut state = state.lock().unwrap();
    let (refresh, new_refresh, scope) = match get("grant_type") {
        "authorization_code" => {
            let Some(issued) = state.codes.remove(get("code")) else {
                return oauth_error("invalid_grant", "Malformed auth code.");
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(get("code_verifier").as_bytes()));
            if challenge != issued.challenge {
                return oauth_error("invalid_grant", "Invalid code verifier.");
            }
            if get("redirect_uri") != issued.redirect_uri {
                return oauth_error("redirect_uri_mismatch", "Bad Request");
            }
            let refresh = format!("1//standin-user-refresh-{}", state.refresh_tokens.len() + 1);
            state.refresh_tokens.push(refresh.clone());
            (refresh.clone(), Some(refresh), issued.scope)
        }
        "refresh_token" => {
            let refresh = get("refresh_token");
            if refresh != REFRESH_TOKEN && !state.refresh_tokens.iter().any(|r| r == refresh) {
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            }
            (
                refresh.to_owned(),
                None,
                "https://www.googleapis.com/auth/calendar.readonly".to_owned(),
            )
        }
        _ => return oauth_error("unsupported_grant_type", "Invalid grant_type"),
    };
    state.tokens_issued += 1;
    let access = format!("ya29.standin-{}", state.tokens_issued);
    state.access_tokens.insert(access.clone(), refresh);
    let mut body = json!({
        "access_token": access,
        "expires_in": 3599,
        "scope": scope,
        "token_type": "Bearer",
    });
    if let Some(refresh) = new_refresh {
        body["refresh_token"] = json!(refresh);
    }
    Json(body).into_response()
}

async fn revoke(State(state): Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let token = form.get("token").cloned().unwrap_or_default();
    let mut state = state.lock().unwrap();
    let Some(at) = state.refresh_tokens.iter().position(|r| *r == token) else {
        return oauth_error("invalid_token", "Token expired or revoked");
    };
    let refresh = state.refresh_tokens.remove(at);
    state.access_tokens.retain(|_, r| *r != refresh);
    state.revoked.push(refresh);
    StatusCode::OK.into_response()
}

/// Whether the call carries a live access token; records whose account it is.
fn authorized(state: &mut StandinState, headers: &HeaderMap) -> bool {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented.and_then(|p| state.access_tokens.get(p)).cloned() {
        Some(refresh) => {
            state.api_calls_by.push(refresh);
            true
        }
        None => false,
    }
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
    if !authorized(&mut state, &headers) {
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
    if !authorized(&mut state, &headers) {
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
    if !authorized(&mut state, &headers) {
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
    let mut state = state.lock().unwrap();
    if !authorized(&mut state, &headers) {
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
