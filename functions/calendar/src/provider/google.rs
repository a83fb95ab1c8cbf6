//! Google Calendar API v3 over HTTPS (reqwest with rustls).
//!
//! Requests carry an OAuth access token of the user whose calendar they touch, obtained
//! at call time from that user's refresh token (sealed in the store, see
//! [`crate::credentials`]) at the configured token endpoint. Access tokens are kept in
//! memory per user until a minute before they expire, and only while the user's stored
//! refresh token is still the one they came from; a `401` from the API drops the user's
//! token and the request is tried once more with a fresh one (a token revoked early). A user who has not connected gets [`ProviderError::NotConnected`]. In the
//! explicit single-tenant mode (`CALENDAR_SINGLE_TENANT=true`) one configured refresh
//! token serves every user instead.
//!
//! Status codes say whether a retry can help: `410` is an expired sync token, `404` a
//! channel or calendar that does not exist, `429`, `5xx`, rate-limit `403`s and network
//! failures are [`ProviderError::Unavailable`], any other refusal is
//! [`ProviderError::Rejected`]. Secrets are never logged; error messages quote Google's
//! `error.message`, which names no credentials.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{CalendarProvider, CalendarSummary, EventPage, ProviderError, WatchRequest, Watched};
use crate::credentials::CredentialVault;
use crate::keyring::KeyRingSource;
use crate::oauth::{InvalidUrl, OAuthClient, OAuthSettings, http_url, transport_failed};
use crate::secrets::TokenDigest;
use crate::store::CalendarEvent;

pub use crate::oauth::DEFAULT_TOKEN_URL;

/// Google's Calendar API root.
pub const DEFAULT_API_URL: &str = "https://www.googleapis.com/calendar/v3";

/// Whose Google account serves a user.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// Each user connects their own (the default); their refresh tokens are sealed under
    /// the key ring from `token_keys`.
    PerUser {
        /// `CALENDAR_TOKEN_KEYS_SECRET_ARN` or `CALENDAR_TOKEN_KEYS`; functions that never
        /// touch a token go without.
        token_keys: Option<KeyRingSource>,
    },
    /// `CALENDAR_SINGLE_TENANT=true`: one account's refresh token (`GOOGLE_REFRESH_TOKEN`)
    /// serves every user (a deployment for one person or one team).
    SingleTenant(SecretString),
}

/// How to reach Google.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// API root (`GOOGLE_CALENDAR_API_URL`), without a trailing `/`.
    pub api_url: String,
    /// OAuth endpoints and client credentials.
    pub oauth: OAuthSettings,
    /// Per-user accounts or the single-tenant one.
    pub accounts: Accounts,
}

/// Where a user's refresh token comes from.
#[derive(Debug, Clone)]
pub enum RefreshTokens {
    /// The user's own, from the vault.
    PerUser(CredentialVault),
    /// One for everyone (single-tenant mode).
    SingleTenant(SecretString),
}

/// Events asked for per page (Google's maximum is 2500; its default 250).
const PAGE_SIZE: &str = "250";
/// An access token is renewed this long before Google says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

struct AccessToken {
    token: SecretString,
    renew_at: Instant,
    /// Digest of the refresh token it came from: a user who reconnected (perhaps another
    /// Google account) or disconnected meanwhile no longer matches.
    from: TokenDigest,
}

/// The Google Calendar adapter.
pub struct GoogleCalendar {
    http: reqwest::Client,
    api: Url,
    oauth: OAuthClient,
    tokens: RefreshTokens,
    /// Access tokens by user id (one entry, `""`, in single-tenant mode). The lock is held
    /// while a token is refreshed, so concurrent calls do not each ask for one.
    access: tokio::sync::Mutex<HashMap<String, AccessToken>>,
}

impl std::fmt::Debug for GoogleCalendar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleCalendar")
            .field("api", &self.api.as_str())
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
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
    /// An adapter for `config`, refresh tokens from `tokens`; fails on URLs that are not
    /// http(s).
    pub fn new(config: &GoogleConfig, tokens: RefreshTokens) -> Result<Self, InvalidUrl> {
        let api = http_url(&config.api_url, "GOOGLE_CALENDAR_API_URL")?;
        let oauth = OAuthClient::new(&config.oauth)?;
        let timeout = config.oauth.timeout;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|_| InvalidUrl {
                key: "GOOGLE_CALENDAR_API_URL",
            })?;
        Ok(Self {
            http,
            api,
            oauth,
            tokens,
            access: tokio::sync::Mutex::new(HashMap::new()),
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

    /// Whose token a call of `user_id` uses (the cache key).
    fn account_of<'a>(&self, user_id: &'a str) -> &'a str {
        match self.tokens {
            RefreshTokens::PerUser(_) => user_id,
            RefreshTokens::SingleTenant(_) => "",
        }
    }

    /// The refresh token serving `user_id`.
    async fn refresh_token(&self, user_id: &str) -> Result<SecretString, ProviderError> {
        match &self.tokens {
            RefreshTokens::SingleTenant(token) => Ok(token.clone()),
            RefreshTokens::PerUser(vault) => vault.refresh_token(user_id).await?.ok_or_else(|| {
                ProviderError::NotConnected(format!(
                    "user {user_id} has not connected a Google Calendar: GET /calendar/{user_id}/connect"
                ))
            }),
        }
    }

    /// A current access token for `user_id`: the kept one, or a new one from the token
    /// endpoint.
    async fn access_token(
        &self,
        user_id: &str,
        renew: bool,
    ) -> Result<SecretString, ProviderError> {
        let account = self.account_of(user_id);
        // Read on every call (one row, one decryption): a disconnect or a new connection,
        // made through another function, takes effect at once.
        let refresh = self.refresh_token(user_id).await?;
        let from = TokenDigest::of(refresh.expose_secret());
        let mut access = self.access.lock().await;
        if !renew
            && let Some(kept) = access.get(account)
            && kept.from == from
            && Instant::now() < kept.renew_at
        {
            return Ok(kept.token.clone());
        }
        let grant = self.oauth.refresh(&refresh).await?;
        access.insert(
            account.to_owned(),
            AccessToken {
                token: grant.token.clone(),
                renew_at: Instant::now() + grant.lifetime.saturating_sub(EXPIRY_MARGIN),
                from,
            },
        );
        tracing::debug!(
            lifetime_s = grant.lifetime.as_secs(),
            "OAuth access token refreshed"
        );
        Ok(grant.token)
    }

    /// Sends a request with a bearer token, renewing the token once on a `401`; returns
    /// the body of a success, or the error its status means.
    async fn call(
        &self,
        user_id: &str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<String, ProviderError> {
        let mut renew = false;
        loop {
            let token = self.access_token(user_id, renew).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| transport_failed(&e))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| transport_failed(&e))?;
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
        let answer: WatchAnswer = Self::decode(
            &self
                .call(request.user_id, Method::POST, url, Some(&body))
                .await?,
            "watch",
        )?;
        let expires_at = expiration(answer.expiration.as_ref()).unwrap_or_else(|| {
            Utc::now() + chrono::Duration::from_std(request.ttl).unwrap_or_default()
        });
        Ok(Watched {
            resource_id: answer.resource_id,
            expires_at,
        })
    }

    async fn stop(
        &self,
        user_id: &str,
        channel_id: &str,
        resource_id: &str,
    ) -> Result<(), ProviderError> {
        let url = self.url(&["channels", "stop"]);
        let body = json!({ "id": channel_id, "resourceId": resource_id });
        self.call(user_id, Method::POST, url, Some(&body))
            .await
            .map(|_| ())
    }

    async fn list_events(
        &self,
        user_id: &str,
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
        let answer: EventsAnswer = Self::decode(
            &self.call(user_id, Method::GET, url, None).await?,
            "events.list",
        )?;
        Ok(EventPage {
            items: answer.items,
            next_page_token: answer.next_page_token,
            next_sync_token: answer.next_sync_token,
        })
    }

    async fn list_calendars(&self, user_id: &str) -> Result<Vec<CalendarSummary>, ProviderError> {
        let mut calendars = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = self.url(&["users", "me", "calendarList"]);
            if let Some(page) = &page {
                url.query_pairs_mut().append_pair("pageToken", page);
            }
            let answer: CalendarListAnswer = Self::decode(
                &self.call(user_id, Method::GET, url, None).await?,
                "calendarList",
            )?;
            calendars.extend(answer.items);
            match answer.next_page_token {
                Some(next) => page = Some(next),
                None => return Ok(calendars),
            }
        }
    }

    async fn disconnect(&self, user_id: &str) -> Result<bool, ProviderError> {
        let RefreshTokens::PerUser(vault) = &self.tokens else {
            // The operator's account is not the user's to revoke.
            return Ok(false);
        };
        let revoked = match vault.refresh_token(user_id).await? {
            Some(token) => {
                self.oauth.revoke(&token).await?;
                tracing::info!(user_id, "Google refresh token revoked");
                true
            }
            None => false,
        };
        self.access.lock().await.remove(user_id);
        Ok(revoked)
    }
}
