//! The accounts endpoints, one router per endpoint so each can be its own Lambda function
//! (and `celeriac dev` merges them):
//!
//! | method and path | router |
//! |---|---|
//! | `POST /api/v1/user/registration` | [`registration`] |
//! | `GET /api/v1/user/confirm?token=` | [`confirm`] (registration and email change) |
//! | `POST /api/v1/user/login` | [`login`] |
//! | `POST /api/v1/user/refresh` | [`refresh`] |
//! | `POST /api/v1/user/logout` | [`logout`] |
//! | `POST /api/v1/user/email` | [`email_change`] |
//! | `GET /api/v1/user/me` | [`me`] |
//!
//! Login is limited to 3 attempts a minute per account and per client IP, failing closed:
//! when Redis cannot count, nobody gets to guess passwords. The access token is a session
//! id ([`celeriac_sessions`]); the refresh token rotates on every use, and a used one
//! presented again revokes its family and every session of the user (a stolen token was
//! replayed).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Extension;
use axum::Router;
use axum::extract::{FromRef, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use celeriac_limits::{
    Admission, ClientIp, FailurePolicy, Limit, LimitKey, SharedLimiter, enforce,
};
use celeriac_mail::SendEmailArgs;
use celeriac_platform::Error;
use celeriac_platform::json::JsonBody;
use celeriac_platform_functions::{Adapters, Database};
use celeriac_sessions::{Authenticated, NewSession, SessionConfig, Sessions};
use celeriac_tasks::{SendOptions, TaskClient};
use chrono::Utc;
use lambda_http::request::RequestContext;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::postgres::PgAccounts;
use super::secrets::{Token, TokenDigest, decoy_hash, hash_password, verify_password};
use super::store::{
    AccountError, MemoryAccounts, NewUser, Refresh, SharedAccounts, TokenKind, User,
};

/// Registration path.
pub const REGISTRATION_PATH: &str = "/api/v1/user/registration";
/// Confirmation path (the link mailed for registration and for an email change).
pub const CONFIRM_PATH: &str = "/api/v1/user/confirm";
/// Login path.
pub const LOGIN_PATH: &str = "/api/v1/user/login";
/// Refresh path.
pub const REFRESH_PATH: &str = "/api/v1/user/refresh";
/// Logout path.
pub const LOGOUT_PATH: &str = "/api/v1/user/logout";
/// Email change request path.
pub const EMAIL_CHANGE_PATH: &str = "/api/v1/user/email";
/// The caller's account.
pub const ME_PATH: &str = "/api/v1/user/me";

/// 3 login attempts a minute per client IP; fails closed.
pub const LOGIN_PER_IP: Limit = Limit::sliding_log(
    "login-ip",
    3,
    Duration::from_secs(60),
    FailurePolicy::Closed,
);
/// 3 login attempts a minute per account; fails closed.
pub const LOGIN_PER_ACCOUNT: Limit = Limit::sliding_log(
    "login-account",
    3,
    Duration::from_secs(60),
    FailurePolicy::Closed,
);
/// Refreshes per client IP: 10 a minute; fails closed.
pub const REFRESH_PER_IP: Limit = Limit::gcra(
    "refresh-ip",
    10,
    Duration::from_secs(60),
    FailurePolicy::Closed,
);
/// Registrations per client IP: 10 an hour, in bursts of 5; fails open (sign-ups matter
/// more than a spam burst while Redis is down).
pub const REGISTRATION_PER_IP: Limit = Limit::gcra(
    "registration-ip",
    10,
    Duration::from_secs(3600),
    FailurePolicy::Open,
)
.with_burst(5);
/// Email change requests per user: 5 an hour (each sends a mail); fails closed.
pub const EMAIL_CHANGE_PER_USER: Limit = Limit::sliding_log(
    "email-change-user",
    5,
    Duration::from_secs(3600),
    FailurePolicy::Closed,
);

/// Settings of the accounts endpoints, read once from the environment.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Where the mailed links point (`PUBLIC_BASE_URL`, e.g. a custom domain). Unset on
    /// Lambda, the API's own domain from the API Gateway request context is used. Never
    /// the request's Host header, which a client could set to its own site.
    pub public_base_url: Option<String>,
    /// How long a mailed confirmation link works (`CONFIRMATION_TTL_HOURS`, default 24).
    pub confirmation_ttl: Duration,
    /// How long a refresh token lives (`REFRESH_TOKEN_TTL_DAYS`, default 30).
    pub refresh_ttl: Duration,
}

impl AccountsConfig {
    /// Reads the settings; `default_base_url` applies when `PUBLIC_BASE_URL` is unset (the
    /// dev runner's own address), and without one it is an error.
    pub fn from_env(
        default_base_url: Option<&str>,
    ) -> Result<Self, celeriac_platform::config::ConfigError> {
        use celeriac_platform::config::ConfigError;
        let var = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        let public_base_url =
            var("PUBLIC_BASE_URL").or_else(|| default_base_url.map(str::to_owned));
        if public_base_url
            .as_deref()
            .is_some_and(|url| !(url.starts_with("https://") || url.starts_with("http://")))
        {
            return Err(ConfigError::new(
                "PUBLIC_BASE_URL",
                "must start with https:// or http://",
            ));
        }
        let number = |key: &'static str, default: u64| -> Result<u64, ConfigError> {
            var(key).map_or(Ok(default), |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ConfigError::new(key, "must be a whole number above 0"))
            })
        };
        Ok(Self {
            public_base_url: public_base_url.map(|url| url.trim_end_matches('/').to_owned()),
            confirmation_ttl: Duration::from_secs(number("CONFIRMATION_TTL_HOURS", 24)? * 3600),
            refresh_ttl: Duration::from_secs(number("REFRESH_TOKEN_TTL_DAYS", 30)? * 86_400),
        })
    }
}

/// What every accounts endpoint works with.
#[derive(Debug, Clone)]
pub struct AccountsApi {
    /// Users and tokens.
    pub store: SharedAccounts,
    /// Sessions (access tokens).
    pub sessions: Sessions,
    /// Rate limits.
    pub limiter: SharedLimiter,
    /// Enqueues `send_email`.
    pub tasks: TaskClient,
    /// Settings.
    pub config: Arc<AccountsConfig>,
}

impl AccountsApi {
    /// The accounts endpoints on `adapters`: PostgreSQL (or the in-memory store under the
    /// dev runner), sessions in the key-value store, the rate limiter, and `tasks` for the
    /// confirmation emails. Fails when a required adapter is not configured.
    pub fn open(
        adapters: &Adapters,
        tasks: TaskClient,
        config: AccountsConfig,
    ) -> anyhow::Result<Self> {
        let store: SharedAccounts = match &adapters.database {
            Some(Database::Postgres(pool)) => Arc::new(PgAccounts::new(pool.clone())),
            Some(Database::Memory) => Arc::new(MemoryAccounts::new()),
            None => {
                anyhow::bail!("accounts need a database: set DATABASE_URL or DATABASE_SECRET_ARN")
            }
        };
        let kv = adapters
            .kv
            .clone()
            .context("accounts need Redis for sessions: set REDIS_URL")?;
        let limiter = adapters
            .limiter
            .clone()
            .context("accounts need Redis for rate limits: set REDIS_URL")?;
        Ok(Self {
            store,
            sessions: Sessions::new(kv, SessionConfig::default()),
            limiter,
            tasks,
            config: Arc::new(config),
        })
    }
}

/// Runs one accounts endpoint as a Lambda function.
pub async fn run_lambda_endpoint(
    service: &str,
    router: fn(AccountsApi) -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |config, adapters| {
        let tasks = adapters
            .task_client(config, service)
            .context("set TASK_QUEUE_URL (SQS) or TASK_TRANSPORT=redis: accounts enqueue emails")?;
        Ok(router(AccountsApi::open(
            adapters,
            tasks,
            AccountsConfig::from_env(None)?,
        )?))
    })
    .await
}

impl FromRef<AccountsApi> for Sessions {
    fn from_ref(api: &AccountsApi) -> Self {
        api.sessions.clone()
    }
}

/// `POST /api/v1/user/registration`.
pub fn registration(api: AccountsApi) -> Router {
    Router::new()
        .route(REGISTRATION_PATH, post(register))
        .with_state(api)
}

/// `GET /api/v1/user/confirm?token=`.
pub fn confirm(api: AccountsApi) -> Router {
    Router::new()
        .route(CONFIRM_PATH, get(confirm_email))
        .with_state(api)
}

/// `POST /api/v1/user/login`.
pub fn login(api: AccountsApi) -> Router {
    Router::new()
        .route(LOGIN_PATH, post(log_in))
        .with_state(api)
}

/// `POST /api/v1/user/refresh`.
pub fn refresh(api: AccountsApi) -> Router {
    Router::new()
        .route(REFRESH_PATH, post(refresh_tokens))
        .with_state(api)
}

/// `POST /api/v1/user/logout`.
pub fn logout(api: AccountsApi) -> Router {
    Router::new()
        .route(LOGOUT_PATH, post(log_out))
        .with_state(api)
}

/// `POST /api/v1/user/email`.
pub fn email_change(api: AccountsApi) -> Router {
    Router::new()
        .route(EMAIL_CHANGE_PATH, post(request_email_change))
        .with_state(api)
}

/// `GET /api/v1/user/me`.
pub fn me(api: AccountsApi) -> Router {
    Router::new()
        .route(ME_PATH, get(current_user))
        .with_state(api)
}

/// Every accounts router, merged (the dev runner's view).
pub fn all(api: AccountsApi) -> Router {
    Router::new()
        .merge(registration(api.clone()))
        .merge(confirm(api.clone()))
        .merge(login(api.clone()))
        .merge(refresh(api.clone()))
        .merge(logout(api.clone()))
        .merge(email_change(api.clone()))
        .merge(me(api))
}

/// A lower-cased, trimmed address with one `@`, a dotted domain, no spaces; the real test
/// is the confirmation mail.
pub fn normalize_email(raw: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(Error::BadRequest("email: not a valid email address".into()))
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    let length = password.chars().count();
    if (8..=128).contains(&length) {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "password: must be 8 to 128 characters".into(),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    email: String,
    password: SecretString,
    #[serde(default)]
    name: Option<String>,
}

async fn register(
    State(api): State<AccountsApi>,
    ClientIp(ip): ClientIp,
    context: Option<Extension<RequestContext>>,
    JsonBody(body): JsonBody<Registration>,
) -> Result<Response, Error> {
    let email = normalize_email(&body.email)?;
    let base_url = public_base_url(&api, context.as_deref())?;
    check_password(secrecy::ExposeSecret::expose_secret(&body.password))?;
    let name = body.name.unwrap_or_default().trim().to_owned();
    if name.chars().count() > 100 {
        return Err(Error::BadRequest("name: at most 100 characters".into()));
    }
    let admission = enforce(&*api.limiter, &REGISTRATION_PER_IP, &LimitKey::ip(ip)).await?;
    let password_hash = hash_password(body.password)
        .await
        .map_err(Error::internal)?;
    let user = api
        .store
        .create_user(NewUser {
            email,
            name,
            password_hash,
        })
        .await?;
    let token = Token::generate();
    let task_id = match send_confirmation(
        &api,
        &base_url,
        &user,
        &user.email,
        TokenKind::Registration,
        &token,
    )
    .await
    {
        Ok(task_id) => task_id,
        Err(err) => {
            // No mail means no way to confirm: undo the registration so the address can
            // register again, rather than leave an account nobody can activate.
            if let Err(undo) = api.store.delete_unconfirmed_user(user.id).await {
                tracing::error!(user_id = %user.id, error = %undo, "could not undo a registration whose email failed");
            }
            return Err(err);
        }
    };
    tracing::info!(user_id = %user.id, task_id = %task_id, "user registered; confirmation email enqueued");
    let mut response = (
        StatusCode::CREATED,
        axum::Json(json!({
            "user": user,
            "confirmation": {
                "email_task_id": task_id,
                "expires_in": api.config.confirmation_ttl.as_secs(),
            },
        })),
    )
        .into_response();
    write_limit_headers(response.headers_mut(), &admission);
    Ok(response)
}

/// The base of mailed links: the configured URL, else the domain API Gateway received the
/// request on (set by API Gateway, not by the client).
fn public_base_url(api: &AccountsApi, context: Option<&RequestContext>) -> Result<String, Error> {
    if let Some(url) = &api.config.public_base_url {
        return Ok(url.clone());
    }
    let domain = match context {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.domain_name.clone(),
        _ => None,
    };
    domain
        .map(|domain| format!("https://{domain}"))
        .ok_or_else(|| {
            Error::internal("no PUBLIC_BASE_URL and no API Gateway domain: cannot build the link")
        })
}

/// Stores a one-time token for `kind` and enqueues the email carrying its link.
async fn send_confirmation(
    api: &AccountsApi,
    base_url: &str,
    user: &User,
    to: &str,
    kind: TokenKind,
    token: &Token,
) -> Result<String, Error> {
    let expires_at = Utc::now()
        + chrono::Duration::from_std(api.config.confirmation_ttl).unwrap_or(chrono::Duration::MAX);
    api.store
        .put_email_token(&token.digest(), user.id, kind.clone(), expires_at)
        .await?;
    let link = format!("{base_url}{CONFIRM_PATH}?token={}", token.reveal());
    let hours = api.config.confirmation_ttl.as_secs() / 3600;
    let args = match kind {
        TokenKind::Registration => SendEmailArgs::registration_confirmation(to, link),
        TokenKind::EmailChange { .. } => SendEmailArgs::email_change_confirmation(to, link),
    }
    .with("username", user.name.clone())
    .with("valid_hours", hours);
    // One email per token, however often this enqueue is retried.
    let options = SendOptions {
        idempotency_key: Some(format!(
            "confirmation-email:{}",
            hex::encode(token.digest().0)
        )),
        ..SendOptions::default()
    };
    celeriac_mail::enqueue(&api.tasks, &args, options)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "confirmation email not enqueued");
            Error::Unavailable {
                component: "queue",
                reason: e.to_string(),
            }
        })
}

#[derive(Deserialize)]
struct ConfirmQuery {
    token: Option<String>,
}

async fn confirm_email(
    State(api): State<AccountsApi>,
    Query(query): Query<ConfirmQuery>,
) -> Result<axum::Json<serde_json::Value>, Error> {
    let token = query
        .token
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| Error::BadRequest("token: required".into()))?;
    match api.store.redeem_email_token(&TokenDigest::of(&token)).await {
        Ok(Some(user)) => {
            tracing::info!(user_id = %user.id, "email confirmed");
            Ok(axum::Json(json!({ "confirmed": true, "user": user })))
        }
        Ok(None) => Err(Error::BadRequest(
            "token: invalid, already used or expired".into(),
        )),
        Err(AccountError::EmailTaken) => Err(Error::Conflict(
            "another account now uses this email address".into(),
        )),
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: SecretString,
}

async fn log_in(
    State(api): State<AccountsApi>,
    ClientIp(ip): ClientIp,
    request_headers: HeaderMap,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response, Error> {
    let email = normalize_email(&body.email)
        .map_err(|_| Error::Unauthorized("invalid email or password".into()))?;
    enforce(&*api.limiter, &LOGIN_PER_IP, &LimitKey::ip(ip)).await?;
    let admission = enforce(&*api.limiter, &LOGIN_PER_ACCOUNT, &LimitKey::user(&email)).await?;
    let found = api.store.user_by_email(&email).await?;
    let (user, verified) = match found {
        Some((user, hash)) => {
            let verified = verify_password(body.password, hash).await;
            (Some(user), verified)
        }
        None => {
            // Same work as a real check, so response times do not reveal which emails
            // have accounts.
            verify_password(body.password, decoy_hash().await.to_owned()).await;
            (None, false)
        }
    };
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(client_ip = %ip, "login refused: wrong email or password");
        return Err(Error::Unauthorized("invalid email or password".into()));
    };
    if user.confirmed_at.is_none() {
        return Err(Error::Forbidden(
            "confirm your email address first: open the link in the confirmation email".into(),
        ));
    }
    let presented = presented_in(&api, &request_headers);
    let session = api
        .sessions
        .create(&user.id.to_string(), presented.as_deref())
        .await?;
    let refresh = Token::generate();
    api.store
        .put_refresh_token(
            &refresh.digest(),
            Uuid::new_v4(),
            user.id,
            refresh_expiry(&api),
        )
        .await?;
    tracing::info!(user_id = %user.id, "logged in");
    let mut response = token_response(&api, &user, &session, &refresh);
    write_limit_headers(response.headers_mut(), &admission);
    Ok(response)
}

fn presented_in(api: &AccountsApi, headers: &HeaderMap) -> Option<String> {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.headers = headers.clone();
    celeriac_sessions::presented(&parts, &api.sessions.config().cookie_name).map(str::to_owned)
}

fn refresh_expiry(api: &AccountsApi) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(api.config.refresh_ttl).unwrap_or(chrono::Duration::MAX)
}

fn token_response(
    api: &AccountsApi,
    user: &User,
    session: &NewSession,
    refresh: &Token,
) -> Response {
    let mut response = axum::Json(json!({
        "access_token": session.token.as_str(),
        "token_type": "Bearer",
        "expires_in": api.sessions.config().idle_timeout.as_secs(),
        "refresh_token": refresh.reveal(),
        "user": user,
    }))
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, api.sessions.set_cookie(&session.token));
    // Tokens must not sit in shared caches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn write_limit_headers(headers: &mut HeaderMap, admission: &Admission) {
    if let Admission::Counted(decision) = admission {
        decision.write_headers(headers);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh_tokens(
    State(api): State<AccountsApi>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Response, Error> {
    let admission = enforce(&*api.limiter, &REFRESH_PER_IP, &LimitKey::ip(ip)).await?;
    let successor = Token::generate();
    let outcome = api
        .store
        .rotate_refresh_token(
            &TokenDigest::of(&body.refresh_token),
            &successor.digest(),
            refresh_expiry(&api),
        )
        .await?;
    match outcome {
        Refresh::Rotated { user_id } => {
            let user = api
                .store
                .user_by_id(user_id)
                .await?
                .ok_or_else(|| Error::Unauthorized("refresh token is invalid".into()))?;
            let session = api.sessions.create(&user_id.to_string(), None).await?;
            let mut response = token_response(&api, &user, &session, &successor);
            write_limit_headers(response.headers_mut(), &admission);
            Ok(response)
        }
        Refresh::Reused { user_id } => {
            let revoked = api.sessions.revoke_all(&user_id.to_string()).await?;
            tracing::warn!(user_id = %user_id, sessions_revoked = revoked, "refresh token reused: family and sessions revoked");
            Err(Error::Unauthorized(
                "refresh token was already used; every session of this account has been ended, log in again".into(),
            ))
        }
        Refresh::Invalid => Err(Error::Unauthorized(
            "refresh token is invalid, expired or revoked".into(),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutRequest {
    #[serde(default)]
    refresh_token: Option<String>,
}

async fn log_out(
    State(api): State<AccountsApi>,
    auth: Authenticated,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    // The body is optional: a refresh token in it is revoked too.
    let body: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::BadRequest(format!(
                "invalid JSON body: {}",
                celeriac_platform::json::without_values(&e)
            ))
        })?
    };
    if let Some(refresh) = body.refresh_token {
        api.store
            .revoke_refresh_family(&TokenDigest::of(&refresh))
            .await?;
    }
    api.sessions.destroy(auth.token.as_str()).await?;
    tracing::info!(user_id = %auth.user_id, "logged out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, api.sessions.clear_cookie());
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailChangeRequest {
    new_email: String,
}

async fn request_email_change(
    State(api): State<AccountsApi>,
    auth: Authenticated,
    context: Option<Extension<RequestContext>>,
    JsonBody(body): JsonBody<EmailChangeRequest>,
) -> Result<Response, Error> {
    let new_email = normalize_email(&body.new_email)?;
    let base_url = public_base_url(&api, context.as_deref())?;
    let user = signed_in_user(&api, &auth).await?;
    if new_email == user.email {
        return Err(Error::BadRequest(
            "new_email: this is already the account's address".into(),
        ));
    }
    if api.store.user_by_email(&new_email).await?.is_some() {
        return Err(Error::Conflict(
            "an account with this email already exists".into(),
        ));
    }
    let admission = enforce(
        &*api.limiter,
        &EMAIL_CHANGE_PER_USER,
        &LimitKey::user(user.id),
    )
    .await?;
    let token = Token::generate();
    let task_id = send_confirmation(
        &api,
        &base_url,
        &user,
        &new_email,
        TokenKind::EmailChange {
            new_email: new_email.clone(),
        },
        &token,
    )
    .await?;
    tracing::info!(user_id = %user.id, task_id = %task_id, "email change requested");
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "confirmation_sent",
            "email_task_id": task_id,
            "expires_in": api.config.confirmation_ttl.as_secs(),
        })),
    )
        .into_response();
    write_limit_headers(response.headers_mut(), &admission);
    Ok(response)
}

async fn signed_in_user(api: &AccountsApi, auth: &Authenticated) -> Result<User, Error> {
    let id = Uuid::parse_str(&auth.user_id)
        .map_err(|_| Error::Unauthorized("session is missing, invalid or expired".into()))?;
    api.store
        .user_by_id(id)
        .await?
        .ok_or_else(|| Error::Unauthorized("the account of this session no longer exists".into()))
}

async fn current_user(
    State(api): State<AccountsApi>,
    auth: Authenticated,
) -> Result<axum::Json<serde_json::Value>, Error> {
    let user = signed_in_user(&api, &auth).await?;
    Ok(axum::Json(json!({ "user": user })))
}
