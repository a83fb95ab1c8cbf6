//! Google Calendar API v3 over HTTPS (reqwest with rustls).
//!
//! Requests carry an OAuth access token obtained from the token endpoint with the
//! configured refresh token, client id and secret (`grant_type=refresh_token`). The token
//! is kept until a minute before it expires; a `401` from the API drops it and the request
//! is tried once more with a fresh one (a token revoked early). One Google account serves
//! every user of this backend, so the `user_id` of the port's calls does not reach Google.
//!
//! Status codes say whether a retry can help: `410` is an expired sync token, `404` a
//! channel or calendar that does not exist, `429`, `5xx`, rate-limit `403`s and network
//! failures are [`ProviderError::Unavailable`], any other refusal is
//! [`ProviderError::Rejected`]. Secrets are never logged; error messages quote Google's
//! `error.message`, which names no credentials.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{CalendarProvider, CalendarSummary, EventPage, ProviderError, WatchRequest, Watched};
use crate::store::CalendarEvent;

/// Google's Calendar API root.
pub const DEFAULT_API_URL: &str = "https://www.googleapis.com/calendar/v3";
/// Google's OAuth 2.0 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Events asked for per page (Google's maximum is 2500; its default 250).
const PAGE_SIZE: &str = "250";
/// An access token is renewed this long before Google says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How to reach Google.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// API root (`GOOGLE_CALENDAR_API_URL`), without a trailing `/`.
    pub api_url: String,
    /// Token endpoint (`GOOGLE_OAUTH_TOKEN_URL`).
    pub token_url: String,
    /// OAuth client id (`GOOGLE_CLIENT_ID`).
    pub client_id: String,
    /// OAuth client secret (`GOOGLE_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// The account's refresh token (`GOOGLE_REFRESH_TOKEN`).
    pub refresh_token: SecretString,
    /// Bound on one request.
    pub timeout: Duration,
}

struct AccessToken {
    token: SecretString,
    renew_at: Instant,
}

/// The Google Calendar adapter.
pub struct GoogleCalendar {
    http: reqwest::Client,
    api: Url,
    token_url: Url,
    config: GoogleConfig,
    access: tokio::sync::Mutex<Option<AccessToken>>,
}

impl std::fmt::Debug for GoogleCalendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCalendar")
            .field("api", &self.api.as_str())
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

/// A URL that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{key} is not an http(s) URL")]
pub struct InvalidUrl {
    /// Which setting.
    pub key: &'static str,
}

fn http_url(raw: &str, key: &'static str) -> Result<Url, InvalidUrl> {
    Url::parse(raw.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && !u.cannot_be_a_base())
        .ok_or(InvalidUrl { key })
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchAnswer {
    resource_id: String,
    #[serde(default)]
    expiration: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsAnswer {
    #[serde(default)]
    items: Vec<CalendarEvent>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    next_sync_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CalendarListAnswer {
    #[serde(default)]
    items: Vec<CalendarSummary>,
    #[serde(default)]
    next_page_token: Option<String>,
}

fn unavailable(err: &reqwest::Error) -> ProviderError {
    // Said without the URL, which may carry a sync token.
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    ProviderError::Unavailable(format!("request to Google failed: {kind}"))
}

/// Google's error message from an error body, if it has one.
fn google_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error_description"].as_str())
            .or_else(|| v["error"].as_str())
            .map(str::to_owned)
    });
    message.unwrap_or_else(|| body.chars().take(200).collect())
}

fn is_rate_limit(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["errors"].as_array().cloned())
        .is_some_and(|errors| {
            errors.iter().any(|e| {
                matches!(
                    e["reason"].as_str(),
                    Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")
                )
            })
        })
}

fn refused(status: StatusCode, body: &str) -> ProviderError {
    let message = format!("{status}: {}", google_message(body));
    match status {
        StatusCode::GONE => ProviderError::SyncTokenExpired,
        StatusCode::NOT_FOUND => ProviderError::NotFound(message),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            ProviderError::Unavailable(message)
        }
        StatusCode::FORBIDDEN if is_rate_limit(body) => ProviderError::Unavailable(message),
        s if s.is_server_error() => ProviderError::Unavailable(message),
        _ => ProviderError::Rejected(message),
    }
}

/// Google's `expiration`: milliseconds since the epoch, as a string or a number.
fn expiration(value: Option<&serde_json::Value>) -> Option<DateTime<Utc>> {
    let ms = match value? {
        serde_json::Value::String(s) => s.parse::<i64>().ok()?,
        serde_json::Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Utc.timestamp_millis_opt(ms).single()
}

impl GoogleCalendar {
    /// An adapter for `config`; fails on URLs that are not http(s).
    pub fn new(config: GoogleConfig) -> Result<Self, InvalidUrl> {
        let api = http_url(&config.api_url, "GOOGLE_CALENDAR_API_URL")?;
        let token_url = http_url(&config.token_url, "GOOGLE_OAUTH_TOKEN_URL")?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|_| InvalidUrl {
                key: "GOOGLE_CALENDAR_API_URL",
            })?;
        Ok(Self {
            http,
            api,
            token_url,
            config,
            access: tokio::sync::Mutex::new(None),
        })
    }

    /// The API URL of `segments` under the root, each segment escaped.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A current access token: the kept one, or a new one from the token endpoint.
    async fn access_token(&self, renew: bool) -> Result<SecretString, ProviderError> {
        let mut access = self.access.lock().await;
        if !renew
            && let Some(kept) = access.as_ref()
            && Instant::now() < kept.renew_at
        {
            return Ok(kept.token.clone());
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.config.refresh_token.expose_secret()),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose_secret()),
        ];
        let response = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unavailable(&e))?;
        if !status.is_success() {
            let message = format!("token endpoint {status}: {}", google_message(&body));
            tracing::warn!(%status, "OAuth token refresh refused");
            // A refused grant (revoked or wrong credentials) needs new configuration.
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    ProviderError::Unavailable(message)
                } else {
                    ProviderError::Rejected(message)
                },
            );
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|_| {
            ProviderError::Unavailable("token endpoint answered without an access_token".into())
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(3600));
        let token = SecretString::from(answer.access_token);
        *access = Some(AccessToken {
            token: token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
        });
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "OAuth access token refreshed"
        );
        Ok(token)
    }

    /// Sends a request with a bearer token, renewing the token once on a `401`; returns
    /// the body of a success, or the error its status means.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<String, ProviderError> {
        let mut renew = false;
        loop {
            let token = self.access_token(renew).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| unavailable(&e))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| unavailable(&e))?;
            if status.is_success() {
                return Ok(text);
            }
            if status == StatusCode::UNAUTHORIZED && !renew {
                renew = true;
                continue;
            }
            return Err(refused(status, &text));
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, ProviderError> {
        serde_json::from_str(body).map_err(|e| {
            ProviderError::Rejected(format!(
                "Google's {what} answer has an unexpected shape: {}",
                celeriac_platform::json::without_values(&e)
            ))
        })
    }
}

#[async_trait]
impl CalendarProvider for GoogleCalendar {
    fn adapter(&self) -> &'static str {
        "google"
    }

    async fn watch(&self, request: &WatchRequest<'_>) -> Result<Watched, ProviderError> {
        let url = self.url(&["calendars", request.calendar_id, "events", "watch"]);
        let body = json!({
            "id": request.channel_id,
            "type": "web_hook",
            "address": request.address,
            "token": request.token,
            "params": { "ttl": request.ttl.as_secs().to_string() },
        });
        let answer: WatchAnswer =
            Self::decode(&self.call(Method::POST, url, Some(&body)).await?, "watch")?;
        let expires_at = expiration(answer.expiration.as_ref()).unwrap_or_else(|| {
            Utc::now() + chrono::Duration::from_std(request.ttl).unwrap_or_default()
        });
        Ok(Watched {
            resource_id: answer.resource_id,
            expires_at,
        })
    }

    async fn stop(&self, channel_id: &str, resource_id: &str) -> Result<(), ProviderError> {
        let url = self.url(&["channels", "stop"]);
        let body = json!({ "id": channel_id, "resourceId": resource_id });
        self.call(Method::POST, url, Some(&body)).await.map(|_| ())
    }

    async fn list_events(
        &self,
        _user_id: &str,
        calendar_id: &str,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<EventPage, ProviderError> {
        let mut url = self.url(&["calendars", calendar_id, "events"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("maxResults", PAGE_SIZE);
            if let Some(token) = sync_token {
                query.append_pair("syncToken", token);
            }
            if let Some(page) = page_token {
                query.append_pair("pageToken", page);
            }
        }
        let answer: EventsAnswer =
            Self::decode(&self.call(Method::GET, url, None).await?, "events.list")?;
        Ok(EventPage {
            items: answer.items,
            next_page_token: answer.next_page_token,
            next_sync_token: answer.next_sync_token,
        })
    }

    async fn list_calendars(&self, _user_id: &str) -> Result<Vec<CalendarSummary>, ProviderError> {
        let mut calendars = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = self.url(&["users", "me", "calendarList"]);
            if let Some(page) = &page {
                url.query_pairs_mut().append_pair("pageToken", page);
            }
            let answer: CalendarListAnswer =
                Self::decode(&self.call(Method::GET, url, None).await?, "calendarList")?;
            calendars.extend(answer.items);
            match answer.next_page_token {
                Some(next) => page = Some(next),
                None => return Ok(calendars),
            }
        }
    }
}
