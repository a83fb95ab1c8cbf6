//! The calendar endpoints, one router per endpoint so each can be its own Lambda function
//! (and `celeriac dev` merges them):
//!
//! | method and path | router |
//! |---|---|
//! | `POST /webhook/google-calendar` | [`google_webhook`] (public) |
//! | `POST /webhook/setup/{user_id}` | [`webhook_setup`] |
//! | `DELETE /webhook/unsubscribe/{channel_id}` | [`webhook_unsubscribe`] |
//! | `GET /webhook/status/{user_id}` | [`webhook_status`] |
//! | `GET /calendar/{user_id}/events` | [`events`] (cached) |
//! | `GET /calendar/{user_id}/events/{event_id}` | [`event`] (cached) |
//! | `GET /calendar/{user_id}/calendars` | [`calendars`] (cached) |
//! | `GET /calendar/{user_id}/connect` | [`connect`] |
//! | `GET /oauth/google-calendar/callback` | [`oauth_callback`] |
//! | `DELETE /calendar/{user_id}/connection` | [`disconnect`] |
//!
//! (`GET /webhook/task-status/{task_id}` is the platform's task status.)
//!
//! Who may call what: every route but the webhook needs the caller's session (the
//! accounts' login; 401 without one). `{user_id}` must be the caller's own id, and a
//! channel id one of the caller's channels: anything else answers the same 404 as an id
//! that does not exist, and changes nothing. A channel watches one of the caller's own
//! calendars. The webhook is public: Google does not log in, it echoes the channel token
//! we gave it.
//!
//! The webhook answers Google at once: it checks the channel and its token, then only
//! enqueues. An unknown channel is `404`, a missing or wrong token `403` (a forged or
//! stale notification); in both cases nothing is enqueued. `sync` notifications (sent when
//! a channel starts) are acknowledged with `200` and not processed.
//!
//! Under `celeriac dev` with the fixture provider, [`fixture_control`] adds
//! `PUT` / `DELETE /_celeriac/calendar/{user_id}/events/{event_id}` (the caller's own
//! fixture calendar only): change the fixture calendar as a user would in Google
//! Calendar, and get back the notification Google would post. No Lambda function serves
//! it.

use std::sync::Arc;

use std::collections::HashMap;

use anyhow::Context;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use celeriac_cache::CacheHeadersLayer;
use celeriac_platform::Error;
use celeriac_sessions::{Authenticated, SessionConfig, Sessions};
use celeriac_tasks::{SendOptions, TaskClient};
use chrono::Utc;
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde_json::json;

use crate::CalendarBackend;
use crate::cache::CalendarCache;
use crate::channels::{close_channel, open_channel};
use crate::config::CalendarConfig;
use crate::provider::fixture::FixtureProvider;
use crate::provider::{CalendarSummary, ProviderError};
use crate::store::{CalendarEvent, Channel, EventTime};
use crate::sync::{PROCESS_CALENDAR_WEBHOOK, WebhookArgs};

/// Google's notifications.
pub const WEBHOOK_PATH: &str = "/webhook/google-calendar";
/// Channel setup.
pub const SETUP_PATH: &str = "/webhook/setup/{user_id}";
/// Channel removal.
pub const UNSUBSCRIBE_PATH: &str = "/webhook/unsubscribe/{channel_id}";
/// A user's channels and sync state.
pub const STATUS_PATH: &str = "/webhook/status/{user_id}";
/// A user's events.
pub const EVENTS_PATH: &str = "/calendar/{user_id}/events";
/// One event.
pub const EVENT_PATH: &str = "/calendar/{user_id}/events/{event_id}";
/// A user's calendars.
pub const CALENDARS_PATH: &str = "/calendar/{user_id}/calendars";
/// Connecting the caller's Google Calendar: the redirect to Google's consent page.
pub const CONNECT_PATH: &str = "/calendar/{user_id}/connect";
/// Where Google sends the browser back after consent.
pub const CALLBACK_PATH: &str = "/oauth/google-calendar/callback";
/// Disconnecting the caller's Google Calendar.
pub const CONNECTION_PATH: &str = "/calendar/{user_id}/connection";
/// The fixture calendar's control (dev runner only).
pub const FIXTURE_EVENT_PATH: &str = "/_celeriac/calendar/{user_id}/events/{event_id}";

/// What every calendar endpoint works with.
#[derive(Debug, Clone)]
pub struct CalendarApi {
    /// Store, provider, cache and settings.
    pub backend: CalendarBackend,
    /// The accounts' sessions, in the backend's key-value store: who is calling.
    pub sessions: Sessions,
    /// Enqueues `process_calendar_webhook`; `None` where no queue is configured (the
    /// read endpoints' functions), and the endpoints that enqueue answer 503.
    pub tasks: Option<TaskClient>,
}

impl FromRef<CalendarApi> for Sessions {
    fn from_ref(api: &CalendarApi) -> Self {
        api.sessions.clone()
    }
}

impl CalendarApi {
    /// The endpoints over `backend`, with the accounts' sessions in its key-value store,
    /// enqueuing with `tasks`.
    pub fn new(backend: CalendarBackend, tasks: Option<TaskClient>) -> Self {
        let sessions = Sessions::new(backend.kv.clone(), SessionConfig::default());
        Self {
            backend,
            sessions,
            tasks,
        }
    }

    fn tasks(&self) -> Result<&TaskClient, Error> {
        self.tasks.as_ref().ok_or_else(|| Error::Unavailable {
            component: "queue",
            reason: "no task queue is configured for this function (TASK_QUEUE_URL)".into(),
        })
    }
}

/// Runs one calendar endpoint as a Lambda function: configuration and clients built once,
/// then `router` over them until the runtime stops.
pub async fn run_lambda_endpoint(
    service: &str,
    router: fn(CalendarApi) -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |config, adapters| {
        let backend = CalendarBackend::open(adapters, CalendarConfig::from_env(false, None)?)
            .context("calendar backend")?;
        let tasks = adapters.task_client(config, service);
        Ok(router(CalendarApi::new(backend, tasks)))
    })
    .await
}

/// `POST /webhook/google-calendar`.
pub fn google_webhook(api: CalendarApi) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive_notification))
        .with_state(api)
}

/// `POST /webhook/setup/{user_id}`.
pub fn webhook_setup(api: CalendarApi) -> Router {
    Router::new()
        .route(SETUP_PATH, post(set_up_channel))
        .with_state(api)
}

/// `DELETE /webhook/unsubscribe/{channel_id}`.
pub fn webhook_unsubscribe(api: CalendarApi) -> Router {
    Router::new()
        .route(UNSUBSCRIBE_PATH, delete(unsubscribe))
        .with_state(api)
}

/// `GET /webhook/status/{user_id}`.
pub fn webhook_status(api: CalendarApi) -> Router {
    Router::new()
        .route(STATUS_PATH, get(channel_status))
        .with_state(api)
}

/// `GET /calendar/{user_id}/events`, cached.
pub fn events(api: CalendarApi) -> Router {
    Router::new()
        .route(EVENTS_PATH, get(list_events))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /calendar/{user_id}/events/{event_id}`, cached.
pub fn event(api: CalendarApi) -> Router {
    Router::new()
        .route(EVENT_PATH, get(one_event))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /calendar/{user_id}/calendars`, cached.
pub fn calendars(api: CalendarApi) -> Router {
    Router::new()
        .route(CALENDARS_PATH, get(list_calendars))
        .with_state(api)
        .layer(CacheHeadersLayer)
}

/// `GET /calendar/{user_id}/connect`.
pub fn connect(api: CalendarApi) -> Router {
    Router::new()
        .route(CONNECT_PATH, get(start_connection))
        .with_state(api)
}

/// `GET /oauth/google-calendar/callback`.
pub fn oauth_callback(api: CalendarApi) -> Router {
    Router::new()
        .route(CALLBACK_PATH, get(finish_connection))
        .with_state(api)
}

/// `DELETE /calendar/{user_id}/connection`.
pub fn disconnect(api: CalendarApi) -> Router {
    Router::new()
        .route(CONNECTION_PATH, delete(end_connection))
        .with_state(api)
}

/// Every calendar router, merged (the dev runner's view).
pub fn all(api: CalendarApi) -> Router {
    Router::new()
        .merge(google_webhook(api.clone()))
        .merge(webhook_setup(api.clone()))
        .merge(webhook_unsubscribe(api.clone()))
        .merge(webhook_status(api.clone()))
        .merge(events(api.clone()))
        .merge(event(api.clone()))
        .merge(calendars(api.clone()))
        .merge(connect(api.clone()))
        .merge(oauth_callback(api.clone()))
        .merge(disconnect(api))
}

/// The fixture control routes' state: the fixture and the sessions saying whose it is.
#[derive(Debug, Clone)]
struct FixtureControl {
    fixture: Arc<FixtureProvider>,
    sessions: Sessions,
}

impl FromRef<FixtureControl> for Sessions {
    fn from_ref(control: &FixtureControl) -> Self {
        control.sessions.clone()
    }
}

/// `PUT` / `DELETE /_celeriac/calendar/{user_id}/events/{event_id}` on the fixture
/// provider: dev runner only (it mounts it when the fixture is the provider; no Lambda
/// function or OpenAPI path serves it), and only on the caller's own fixture calendar.
pub fn fixture_control(fixture: Arc<FixtureProvider>, sessions: Sessions) -> Router {
    Router::new()
        .route(
            FIXTURE_EVENT_PATH,
            put(change_fixture_event).delete(delete_fixture_event),
        )
        .with_state(FixtureControl { fixture, sessions })
}

/// User ids are the accounts' (UUIDs) in the OpenAPI document's `UserId` format: 1 to 64
/// letters, digits, `.`, `_`, `-` or `@`.
fn check_user_id(user_id: &str) -> Result<(), Error> {
    let plain = (1..=64).contains(&user_id.len())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "user_id: 1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        ))
    }
}

/// The path's user must be the caller: anyone else's id answers the same 404 as an id
/// nobody has.
fn caller_owns(auth: &Authenticated, user_id: &str) -> Result<(), Error> {
    check_user_id(user_id)?;
    if auth.user_id == user_id {
        Ok(())
    } else {
        Err(Error::NotFound(format!("no calendar for user {user_id}")))
    }
}

/// The channel, if it is the caller's: another user's answers as an unknown one.
async fn callers_channel(
    api: &CalendarApi,
    auth: &Authenticated,
    channel_id: &str,
) -> Result<Channel, Error> {
    check_channel_id(channel_id)?;
    api.backend
        .store
        .channel(channel_id)
        .await?
        .filter(|c| c.user_id == auth.user_id)
        .ok_or_else(|| Error::NotFound(format!("no channel {channel_id}")))
}

/// Channel ids (ours are UUIDs; Google allows up to 64 of `[A-Za-z0-9-_+/=]`).
fn check_channel_id(channel_id: &str) -> Result<(), Error> {
    let plain = (1..=64).contains(&channel_id.len())
        && channel_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'='));
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "channel id: 1 to 64 letters, digits, '-', '_', '+', '/' or '='".into(),
        ))
    }
}

/// Event and calendar ids: 1 to 1024 visible ASCII characters.
fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if (1..=1024).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{what}: 1 to 1024 visible ASCII characters"
        )))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| Error::BadRequest(format!("{name}: not visible ASCII")))
        })
        .transpose()
}

async fn receive_notification(
    State(api): State<CalendarApi>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let channel_id = header(&headers, "x-goog-channel-id")?
        .ok_or_else(|| Error::BadRequest("X-Goog-Channel-ID: required".into()))?;
    check_channel_id(channel_id)?;
    let state = header(&headers, "x-goog-resource-state")?
        .ok_or_else(|| Error::BadRequest("X-Goog-Resource-State: required".into()))?;
    if !matches!(state, "sync" | "exists" | "not_exists") {
        return Err(Error::BadRequest(
            "X-Goog-Resource-State: expected sync, exists or not_exists".into(),
        ));
    }
    let message_number = header(&headers, "x-goog-message-number")?
        .map(|n| {
            n.parse::<u64>()
                .ok()
                .and_then(|n| i64::try_from(n).ok())
                .ok_or_else(|| Error::BadRequest("X-Goog-Message-Number: a whole number".into()))
        })
        .transpose()?;
    // Every header Google always sends is checked before the channel is looked up, so a
    // malformed notification is a 400 whether or not the channel exists.
    let token = header(&headers, "x-goog-channel-token")?
        .ok_or_else(|| Error::BadRequest("X-Goog-Channel-Token: required".into()))?;
    let backend = &api.backend;
    let Some(channel) = backend.store.channel(channel_id).await? else {
        tracing::info!(channel_id, "notification for an unknown channel refused");
        return Err(Error::NotFound(format!("no channel {channel_id}")));
    };
    if !channel.token_digest.matches(token) {
        tracing::warn!(channel_id, user_id = %channel.user_id, "notification with a wrong channel token refused");
        return Err(Error::Forbidden(
            "X-Goog-Channel-Token does not match the channel".into(),
        ));
    }
    if let Some(resource) = header(&headers, "x-goog-resource-id")?
        && resource != channel.resource_id
    {
        tracing::warn!(channel_id, "notification for another resource refused");
        return Err(Error::Forbidden(
            "X-Goog-Resource-ID does not match the channel".into(),
        ));
    }
    if state == "sync" {
        tracing::info!(channel_id, user_id = %channel.user_id, "sync notification acknowledged");
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "acknowledged", "channel_id": channel_id })),
        )
            .into_response());
    }
    let number = message_number.ok_or_else(|| {
        Error::BadRequest("X-Goog-Message-Number: required for change notifications".into())
    })?;
    if channel
        .last_message_number
        .is_some_and(|last| number <= last)
    {
        tracing::info!(
            channel_id,
            message_number = number,
            "notification already processed"
        );
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "already_processed", "channel_id": channel_id })),
        )
            .into_response());
    }
    let args = WebhookArgs {
        channel_id: channel_id.to_owned(),
        message_number: Some(number),
        resource_state: Some(state.to_owned()),
    };
    // One sync per notification, however often Google (or a retry) delivers it.
    // The sync is the channel owner's: its status is theirs to read, not Google's.
    let options = SendOptions {
        idempotency_key: Some(format!("calendar-webhook:{channel_id}:{number}")),
        owner: Some(channel.user_id.clone()),
        ..SendOptions::default()
    };
    let task_id = enqueue(&api, &args, options).await?;
    tracing::info!(channel_id, user_id = %channel.user_id, message_number = number, task_id = %task_id, "calendar notification accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "channel_id": channel_id, "task_id": task_id })),
    )
        .into_response())
}

async fn enqueue(
    api: &CalendarApi,
    args: &WebhookArgs,
    options: SendOptions,
) -> Result<String, Error> {
    let args = serde_json::to_value(args).map_err(Error::internal)?;
    api.tasks()?
        .send(&PROCESS_CALENDAR_WEBHOOK, args, options)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "process_calendar_webhook not enqueued");
            Error::Unavailable {
                component: "queue",
                reason: e.to_string(),
            }
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    #[serde(default)]
    calendar_id: Option<String>,
}

/// An address of ours Google is given: the configured URL, else the public base URL
/// followed by `path`, else the domain API Gateway received this request on (never the
/// client's Host header).
fn our_address(
    api: &CalendarApi,
    configured: Option<&String>,
    path: &str,
    setting: &str,
    context: Option<&RequestContext>,
) -> Result<String, Error> {
    if let Some(url) = configured {
        return Ok(url.clone());
    }
    if let Some(base) = &api.backend.config.public_base_url {
        return Ok(format!("{base}{path}"));
    }
    let domain = match context {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    domain
        .map(|domain| format!("https://{domain}{path}"))
        .ok_or_else(|| {
            Error::internal(format!(
                "no {setting}, no PUBLIC_BASE_URL and no API Gateway domain: cannot tell Google where {path} is"
            ))
        })
}

/// Where notifications are posted.
fn webhook_address(api: &CalendarApi, context: Option<&RequestContext>) -> Result<String, Error> {
    our_address(
        api,
        api.backend.config.webhook_url.as_ref(),
        WEBHOOK_PATH,
        "CALENDAR_WEBHOOK_URL",
        context,
    )
}

/// Where Google sends the browser back after consent.
fn redirect_address(api: &CalendarApi, context: Option<&RequestContext>) -> Result<String, Error> {
    our_address(
        api,
        api.backend.config.oauth_redirect_url.as_ref(),
        CALLBACK_PATH,
        "CALENDAR_OAUTH_REDIRECT_URL",
        context,
    )
}

/// The caller's calendars, through the cache (the same entry `GET .../calendars` reads).
async fn calendars_of(api: &CalendarApi, user_id: &str) -> Result<Vec<CalendarSummary>, Error> {
    let backend = &api.backend;
    backend
        .cache
        .cache()
        .get_or_compute(
            &CalendarCache::calendars_key(user_id),
            backend.cache.ttl(),
            || async {
                backend
                    .provider
                    .list_calendars(user_id)
                    .await
                    .map_err(Error::from)
            },
        )
        .await
}

async fn set_up_channel(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
    context: Option<Extension<RequestContext>>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    caller_owns(&auth, &user_id)?;
    // The body is optional: `{"calendar_id": "..."}` watches another calendar than primary.
    let request: SetupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SetupRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::BadRequest(format!(
                "invalid JSON body: {}",
                celeriac_platform::json::without_values(&e)
            ))
        })?
    };
    let calendar_id = request.calendar_id.unwrap_or_else(|| "primary".into());
    check_id("calendar_id", &calendar_id)?;
    // Only the caller's own calendars: `primary` is always theirs, any other id must be in
    // their calendar list.
    if calendar_id != "primary"
        && !calendars_of(&api, &user_id)
            .await?
            .iter()
            .any(|c| c.id == calendar_id)
    {
        return Err(Error::NotFound(format!(
            "calendar {calendar_id:?} is not one of your calendars (GET /calendar/{user_id}/calendars lists them)"
        )));
    }
    let backend = &api.backend;
    // One calendar per user: its sync token and events are the user's.
    let synced = backend.store.sync_state(&user_id).await?;
    let watching = backend.store.channels_of_user(&user_id).await?;
    let other = synced
        .map(|s| s.calendar_id)
        .into_iter()
        .chain(watching.into_iter().map(|c| c.calendar_id))
        .find(|c| *c != calendar_id);
    if let Some(other) = other {
        return Err(Error::Conflict(format!(
            "user {user_id} is synced with calendar {other:?}; one calendar per user"
        )));
    }
    let address = webhook_address(&api, context.as_deref())?;
    let tasks = api.tasks()?;
    let channel = open_channel(
        &backend.store,
        &backend.provider,
        &user_id,
        &calendar_id,
        &address,
        backend.config.channel_ttl,
    )
    .await?;
    // The first sync, without waiting for a change: reads have events from the start.
    let args = WebhookArgs {
        channel_id: channel.id.clone(),
        message_number: None,
        resource_state: None,
    };
    let options = SendOptions {
        idempotency_key: Some(format!("calendar-setup:{}", channel.id)),
        owner: Some(channel.user_id.clone()),
        ..SendOptions::default()
    };
    let sync_task_id = match tasks
        .send(
            &PROCESS_CALENDAR_WEBHOOK,
            serde_json::to_value(&args).map_err(Error::internal)?,
            options,
        )
        .await
    {
        Ok(id) => Some(id),
        Err(err) => {
            // The channel works; the first change notification will sync everything.
            tracing::warn!(channel_id = %channel.id, error = %err, "initial calendar sync not enqueued");
            None
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "channel_id": channel.id,
            "user_id": channel.user_id,
            "calendar_id": channel.calendar_id,
            "resource_id": channel.resource_id,
            "expires_at": channel.expires_at,
            "initial_sync_task_id": sync_task_id,
        })),
    )
        .into_response())
}

async fn unsubscribe(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(channel_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    let channel = callers_channel(&api, &auth, &channel_id).await?;
    let backend = &api.backend;
    close_channel(&backend.store, &backend.provider, &channel).await?;
    Ok(Json(json!({
        "channel_id": channel.id,
        "user_id": channel.user_id,
        "stopped": true,
    })))
}

async fn channel_status(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    let backend = &api.backend;
    let (channels, sync, credential) = tokio::try_join!(
        backend.store.channels_of_user(&user_id),
        backend.store.sync_state(&user_id),
        backend.store.credential(&user_id),
    )?;
    // With nothing to connect (fixture, single-tenant), every user counts as connected.
    let connected = backend.oauth.is_none() || credential.is_some();
    let now = Utc::now();
    let channels: Vec<serde_json::Value> = channels
        .iter()
        .map(|c| {
            json!({
                "channel_id": c.id,
                "calendar_id": c.calendar_id,
                "resource_id": c.resource_id,
                "created_at": c.created_at,
                "expires_at": c.expires_at,
                "expired": c.expires_at <= now,
                "last_message_number": c.last_message_number,
                "last_notification_at": c.last_notification_at,
            })
        })
        .collect();
    let sync = sync.map(|s| {
        json!({
            "calendar_id": s.calendar_id,
            "last_synced_at": s.last_synced_at,
            "last_full_sync_at": s.last_full_sync_at,
            "has_sync_token": s.sync_token.is_some(),
        })
    });
    Ok(Json(json!({
        "user_id": user_id,
        "connected": connected,
        "channels": channels,
        "sync": sync,
    })))
}

async fn list_events(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    let backend = &api.backend;
    let events: Vec<CalendarEvent> = backend
        .cache
        .cache()
        .get_or_compute(
            &CalendarCache::events_key(&user_id),
            backend.cache.ttl(),
            || async { backend.store.events(&user_id).await.map_err(Error::from) },
        )
        .await?;
    Ok(Json(json!({ "user_id": user_id, "events": events })))
}

async fn one_event(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path((user_id, event_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    check_id("event_id", &event_id)?;
    let backend = &api.backend;
    // A miss is cached too (as null): a sync that creates the event invalidates its key.
    let event: Option<CalendarEvent> = backend
        .cache
        .cache()
        .get_or_compute(
            &CalendarCache::event_key(&user_id, &event_id),
            backend.cache.ttl(),
            || async {
                backend
                    .store
                    .event(&user_id, &event_id)
                    .await
                    .map_err(Error::from)
            },
        )
        .await?;
    let event =
        event.ok_or_else(|| Error::NotFound(format!("no event {event_id} for user {user_id}")))?;
    Ok(Json(json!({ "user_id": user_id, "event": event })))
}

async fn list_calendars(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    let calendars = calendars_of(&api, &user_id).await?;
    Ok(Json(json!({ "user_id": user_id, "calendars": calendars })))
}

/// Why there is nothing to connect (fixture or single-tenant).
fn nothing_to_connect(api: &CalendarApi) -> Error {
    Error::Conflict(if api.backend.provider.adapter() == "fixture" {
        "the fixture provider needs no Google account: every user has fixture calendars already"
            .into()
    } else {
        "single-tenant mode (CALENDAR_SINGLE_TENANT=true): the operator's Google account serves every user".into()
    })
}

async fn start_connection(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
    context: Option<Extension<RequestContext>>,
) -> Result<Response, Error> {
    caller_owns(&auth, &user_id)?;
    let flow = api
        .backend
        .oauth
        .as_ref()
        .ok_or_else(|| nothing_to_connect(&api))?;
    let redirect = redirect_address(&api, context.as_deref())?;
    let consent = flow.begin(&user_id, &redirect).await?;
    // A browser follows the Location; an API client reads the same URL from the body.
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, consent.url.clone())],
        Json(json!({
            "user_id": user_id,
            "authorization_url": consent.url,
            "expires_in": consent.expires_in.as_secs(),
        })),
    )
        .into_response())
}

/// A query parameter of the callback: present, visible ASCII, at most 2048 characters.
fn callback_parameter<'a>(
    query: &'a HashMap<String, String>,
    name: &str,
) -> Result<&'a str, Error> {
    let value = query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| Error::BadRequest(format!("{name}: required")))?;
    if (1..=2048).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value)
    } else {
        Err(Error::BadRequest(format!(
            "{name}: 1 to 2048 visible ASCII characters"
        )))
    }
}

async fn finish_connection(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, Error> {
    if let Some(refusal) = query.get("error") {
        let refusal: String = refusal
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        return Err(Error::BadRequest(format!(
            "Google did not grant access ({refusal}); nothing was connected"
        )));
    }
    let state = callback_parameter(&query, "state")?;
    let code = callback_parameter(&query, "code")?;
    let flow = api
        .backend
        .oauth
        .as_ref()
        .ok_or_else(|| nothing_to_connect(&api))?;
    let scope = flow.finish(&auth.user_id, state, code).await?;
    // A calendar list cached before the connection is not this account's.
    api.backend
        .cache
        .invalidate_user(&auth.user_id, std::iter::empty())
        .await;
    Ok(Json(json!({
        "user_id": auth.user_id,
        "connected": true,
        "scope": scope,
    })))
}

async fn end_connection(
    State(api): State<CalendarApi>,
    auth: Authenticated,
    Path(user_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    let backend = &api.backend;
    // Channels first, while the user's token can still stop them.
    let channels = backend.store.channels_of_user(&user_id).await?;
    let mut stopped = 0;
    for channel in &channels {
        match backend
            .provider
            .stop(&user_id, &channel.id, &channel.resource_id)
            .await
        {
            Ok(()) => stopped += 1,
            Err(err @ ProviderError::Unavailable(_)) => return Err(err.into()),
            // Gone, refused or not connected: Google stops posting when it expires.
            Err(err) => {
                tracing::warn!(channel_id = %channel.id, user_id, error = %err, "channel not stopped at disconnect");
            }
        }
    }
    let revoked = match backend.provider.disconnect(&user_id).await {
        Ok(revoked) => revoked,
        Err(err @ ProviderError::Unavailable(_)) => return Err(err.into()),
        // A token Google refuses or the key ring cannot open is useless anyway: forget it.
        Err(err) => {
            tracing::warn!(user_id, error = %err, "refresh token not revoked at disconnect");
            false
        }
    };
    let event_ids: Vec<String> = backend
        .store
        .events(&user_id)
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect();
    backend.store.forget_user(&user_id).await?;
    if !backend.cache.invalidate_user(&user_id, &event_ids).await {
        tracing::warn!(
            user_id,
            "some calendar cache entries could not be invalidated"
        );
    }
    tracing::info!(
        user_id,
        revoked,
        channels_stopped = stopped,
        "Google Calendar disconnected"
    );
    Ok(Json(json!({
        "user_id": user_id,
        "disconnected": true,
        "revoked": revoked,
        "channels_stopped": stopped,
    })))
}

/// A change to a fixture event, as a user would make it in Google Calendar.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureChange {
    #[serde(default)]
    calendar_id: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    start: Option<EventTime>,
    #[serde(default)]
    end: Option<EventTime>,
}

async fn change_fixture_event(
    State(FixtureControl { fixture, .. }): State<FixtureControl>,
    auth: Authenticated,
    Path((user_id, event_id)): Path<(String, String)>,
    celeriac_platform::json::JsonBody(change): celeriac_platform::json::JsonBody<FixtureChange>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    check_id("event_id", &event_id)?;
    let calendar_id = change.calendar_id.unwrap_or_else(|| "primary".into());
    check_id("calendar_id", &calendar_id)?;
    let mut event = fixture
        .event(&user_id, &calendar_id, &event_id)
        .unwrap_or_else(|| CalendarEvent {
            id: event_id.clone(),
            status: "confirmed".into(),
            summary: None,
            description: None,
            location: None,
            start: EventTime::default(),
            end: EventTime::default(),
            updated: None,
            html_link: None,
        });
    if change.summary.is_some() {
        event.summary = change.summary;
    }
    if change.description.is_some() {
        event.description = change.description;
    }
    if change.location.is_some() {
        event.location = change.location;
    }
    if let Some(start) = change.start {
        event.start = start;
    }
    if let Some(end) = change.end {
        event.end = end;
    }
    let notifications = fixture.put_event(&user_id, &calendar_id, event);
    let event = fixture.event(&user_id, &calendar_id, &event_id);
    Ok(Json(
        json!({ "event": event, "notifications": notifications }),
    ))
}

async fn delete_fixture_event(
    State(FixtureControl { fixture, .. }): State<FixtureControl>,
    auth: Authenticated,
    Path((user_id, event_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, Error> {
    caller_owns(&auth, &user_id)?;
    check_id("event_id", &event_id)?;
    let notifications = fixture
        .delete_event(&user_id, "primary", &event_id)
        .ok_or_else(|| Error::NotFound(format!("no fixture event {event_id}")))?;
    Ok(Json(
        json!({ "deleted": event_id, "notifications": notifications }),
    ))
}
