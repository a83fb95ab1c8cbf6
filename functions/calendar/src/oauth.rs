//! Connecting a user's own Google Calendar: the OAuth 2.0 authorization code flow with
//! PKCE (RFC 7636, `S256`), and Google's token and revocation endpoints.
//!
//! 1. `GET /calendar/{user_id}/connect` ([`OAuthFlow::begin`]): a fresh `state` and PKCE
//!    verifier are kept in the key-value store for [`STATE_TTL`] under
//!    `calendar:oauth_state:{sha256(state)}`, bound to the caller's user id; the caller is
//!    sent to Google's consent page with the verifier's challenge, scope
//!    [`CALENDAR_SCOPE`], `access_type=offline` and `prompt=consent` (so Google issues a
//!    refresh token).
//! 2. Google sends the browser back to the callback with `code` and `state`
//!    ([`OAuthFlow::finish`]): the state must exist, be the caller's, and is used once; the
//!    code is exchanged with the verifier at the token endpoint, and the refresh token is
//!    sealed into the store ([`crate::credentials`]).
//! 3. Disconnecting revokes the refresh token at Google ([`OAuthClient::revoke`]).
//!
//! The endpoints' URLs are settings, so tests run the flow against a local stand-in.
//! Tokens, codes and verifiers are never logged; errors quote Google's `error` fields,
//! which name no credentials.

use std::time::Duration;

use base64::Engine;
use celeriac_kv::SharedKv;
use celeriac_platform::Error;
use celeriac_platform::token::{Token, TokenDigest};
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credentials::CredentialVault;
use crate::provider::ProviderError;

/// Read-only access to the user's calendars: all this backend needs (watch, list).
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar.readonly";
/// Google's consent page.
pub const DEFAULT_AUTHORIZATION_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's revocation endpoint.
pub const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
/// How long a started connection waits for Google's redirect.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// Key-value prefix of started connections.
const STATE_PREFIX: &str = "calendar:oauth_state:";

/// Google's OAuth endpoints and the client's credentials.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Consent page (`GOOGLE_OAUTH_AUTHORIZATION_URL`).
    pub authorization_url: String,
    /// Token endpoint (`GOOGLE_OAUTH_TOKEN_URL`).
    pub token_url: String,
    /// Revocation endpoint (`GOOGLE_OAUTH_REVOKE_URL`).
    pub revoke_url: String,
    /// OAuth client id (`GOOGLE_CLIENT_ID`).
    pub client_id: String,
    /// OAuth client secret (`GOOGLE_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// Bound on one request.
    pub timeout: Duration,
}

/// A URL setting that is not an http(s) URL.
#[derive(Debug, thiserror::Error)]
#[error("{key} is not an http(s) URL")]
pub struct InvalidUrl {
    /// Which setting.
    pub key: &'static str,
}

pub(crate) fn http_url(raw: &str, key: &'static str) -> Result<Url, InvalidUrl> {
    Url::parse(raw.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && !u.cannot_be_a_base())
        .ok_or(InvalidUrl { key })
}

/// An access token and how long Google says it lives.
pub struct AccessGrant {
    /// The bearer token.
    pub token: SecretString,
    /// Its lifetime.
    pub lifetime: Duration,
}

impl std::fmt::Debug for AccessGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessGrant")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// What the authorization code bought.
pub struct CodeGrant {
    /// The refresh token (Google sends one with `access_type=offline`).
    pub refresh_token: Option<SecretString>,
    /// The scopes granted, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for CodeGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeGrant")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// `error` / `error_description` of an OAuth error body (no token is ever in them).
fn oauth_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|v| {
            let error = v["error"].as_str()?;
            Some(match v["error_description"].as_str() {
                Some(description) => format!("{error}: {description}"),
                None => error.to_owned(),
            })
        })
        .unwrap_or_else(|| "no OAuth error in the body".into())
}

pub(crate) fn transport_failed(err: &reqwest::Error) -> ProviderError {
    // Said without the URL or body, which may carry a token.
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    ProviderError::Unavailable(format!("request to Google failed: {kind}"))
}

/// A refusal of the token or revocation endpoint: retry helps only for 5xx and 429.
fn endpoint_refused(what: &str, status: StatusCode, body: &str) -> ProviderError {
    let message = format!("{what} {status}: {}", oauth_message(body));
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        ProviderError::Unavailable(message)
    } else {
        ProviderError::Rejected(message)
    }
}

/// Google's OAuth endpoints for one client.
pub struct OAuthClient {
    http: reqwest::Client,
    authorization: Url,
    token: Url,
    revoke: Url,
    client_id: String,
    client_secret: SecretString,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token", &self.token.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client of `settings`; fails on URLs that are not http(s).
    pub fn new(settings: &OAuthSettings) -> Result<Self, InvalidUrl> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|_| InvalidUrl {
                key: "GOOGLE_OAUTH_TOKEN_URL",
            })?;
        Ok(Self {
            http,
            authorization: http_url(
                &settings.authorization_url,
                "GOOGLE_OAUTH_AUTHORIZATION_URL",
            )?,
            token: http_url(&settings.token_url, "GOOGLE_OAUTH_TOKEN_URL")?,
            revoke: http_url(&settings.revoke_url, "GOOGLE_OAUTH_REVOKE_URL")?,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
        })
    }

    /// The consent page for one connection.
    pub fn consent_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String {
        let mut url = self.authorization.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", CALENDAR_SCOPE)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent")
            .append_pair("include_granted_scopes", "true");
        url.into()
    }

    async fn post_token(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, ProviderError> {
        let response = self
            .http
            .post(self.token.clone())
            .form(form)
            .send()
            .await
            .map_err(|e| transport_failed(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| transport_failed(&e))?;
        if !status.is_success() {
            tracing::warn!(%status, "OAuth token endpoint refused");
            return Err(endpoint_refused("token endpoint", status, &body));
        }
        serde_json::from_str(&body).map_err(|_| {
            ProviderError::Unavailable("token endpoint answered without an access_token".into())
        })
    }

    /// Exchanges an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<CodeGrant, ProviderError> {
        let answer = self
            .post_token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect_uri),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
            ])
            .await?;
        Ok(CodeGrant {
            refresh_token: answer.refresh_token.map(SecretString::from),
            scope: answer.scope.unwrap_or_default(),
        })
    }

    /// A fresh access token from a refresh token.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<AccessGrant, ProviderError> {
        let answer = self
            .post_token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
            ])
            .await?;
        Ok(AccessGrant {
            token: SecretString::from(answer.access_token),
            lifetime: Duration::from_secs(answer.expires_in.unwrap_or(3600)),
        })
    }

    /// Revokes a token at Google (a refresh token takes its access tokens with it). A
    /// token Google no longer knows (`invalid_token`) counts as revoked.
    pub async fn revoke(&self, token: &SecretString) -> Result<(), ProviderError> {
        let response = self
            .http
            .post(self.revoke.clone())
            .form(&[("token", token.expose_secret())])
            .send()
            .await
            .map_err(|e| transport_failed(&e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| transport_failed(&e))?;
        if status.is_success() || oauth_message(&body).starts_with("invalid_token") {
            Ok(())
        } else {
            Err(endpoint_refused("revocation endpoint", status, &body))
        }
    }
}

/// `BASE64URL(SHA256(verifier))` without padding: RFC 7636's `S256` challenge.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A started connection, as kept in the key-value store.
#[derive(Serialize, Deserialize)]
struct PendingConnection {
    user_id: String,
    verifier: String,
    redirect_uri: String,
}

/// A started connection as [`OAuthFlow::begin`] hands it out.
#[derive(Debug, Clone)]
pub struct Consent {
    /// Where to send the user.
    pub url: String,
    /// How long the connection waits for Google's redirect.
    pub expires_in: Duration,
}

/// The connect and callback steps over the key-value store and the credential vault.
#[derive(Debug)]
pub struct OAuthFlow {
    client: OAuthClient,
    vault: CredentialVault,
    kv: SharedKv,
}

fn state_key(state: &str) -> String {
    format!("{STATE_PREFIX}{}", hex::encode(TokenDigest::of(state).0))
}

fn kv_unavailable(err: &celeriac_kv::KvError) -> Error {
    Error::Unavailable {
        component: "redis",
        reason: err.to_string(),
    }
}

fn refused_state() -> Error {
    Error::BadRequest(
        "state: unknown, expired, already used or not started by this session; start again at GET /calendar/{user_id}/connect".into(),
    )
}

impl OAuthFlow {
    /// The flow through `client`, states in `kv`, tokens into `vault`.
    pub fn new(client: OAuthClient, vault: CredentialVault, kv: SharedKv) -> Self {
        Self { client, vault, kv }
    }

    /// The OAuth client (revocation, token refresh).
    pub fn client(&self) -> &OAuthClient {
        &self.client
    }

    /// Starts a connection for `user_id`, Google to redirect to `redirect_uri`.
    pub async fn begin(&self, user_id: &str, redirect_uri: &str) -> Result<Consent, Error> {
        let state = Token::generate();
        let verifier = Token::generate();
        let pending = PendingConnection {
            user_id: user_id.to_owned(),
            verifier: verifier.reveal().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        };
        let value = serde_json::to_vec(&pending).map_err(Error::internal)?;
        self.kv
            .set(&state_key(state.reveal()), &value, Some(STATE_TTL))
            .await
            .map_err(|e| kv_unavailable(&e))?;
        tracing::info!(user_id, "Google Calendar connection started");
        Ok(Consent {
            url: self.client.consent_url(
                redirect_uri,
                state.reveal(),
                &pkce_challenge(verifier.reveal()),
            ),
            expires_in: STATE_TTL,
        })
    }

    /// Finishes `user_id`'s connection: checks and uses up `state`, exchanges `code`, and
    /// stores the refresh token sealed. Returns the scopes granted.
    pub async fn finish(&self, user_id: &str, state: &str, code: &str) -> Result<String, Error> {
        let key = state_key(state);
        let raw = self
            .kv
            .get(&key)
            .await
            .map_err(|e| kv_unavailable(&e))?
            .ok_or_else(refused_state)?;
        let pending: PendingConnection =
            serde_json::from_slice(&raw).map_err(|_| refused_state())?;
        if pending.user_id != user_id {
            tracing::warn!(
                user_id,
                "OAuth callback with another session's state refused"
            );
            return Err(refused_state());
        }
        // Used once: of two callbacks racing with the same state, one deletes it.
        if !self.kv.delete(&key).await.map_err(|e| kv_unavailable(&e))? {
            return Err(refused_state());
        }
        let grant = self
            .client
            .exchange_code(code, &pending.verifier, &pending.redirect_uri)
            .await
            .map_err(|err| match err {
                ProviderError::Rejected(reason) => Error::BadRequest(format!(
                    "Google refused the authorization code ({reason}); start again at connect"
                )),
                other => other.into(),
            })?;
        let granted = grant
            .scope
            .split_whitespace()
            .any(|s| s == CALENDAR_SCOPE || s == "https://www.googleapis.com/auth/calendar");
        if !granted {
            return Err(Error::BadRequest(format!(
                "calendar access was not granted (scope {CALENDAR_SCOPE} is needed); connect again and allow it"
            )));
        }
        let refresh = grant.refresh_token.ok_or_else(|| {
            Error::BadRequest(
                "Google issued no refresh token; remove this app's access in your Google account and connect again".into(),
            )
        })?;
        self.vault.save(user_id, &refresh, &grant.scope).await?;
        Ok(grant.scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // The example of RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
