//! The accounts endpoints, one router per endpoint so each can be its own Lambda function
//! (and `celeriac dev` merges them):
//!
//! | method and path | router |
//! |---|---|
//! | `POST /api/v1/user/registration` | [`registration`] |
//! | `POST /api/v1/user/registration/resend` | [`registration_resend`] |
//! | `GET /api/v1/user/confirm?token=` | [`confirm_page`] (the mailed link: a page, changes nothing) |
//! | `POST /api/v1/user/confirm` | [`confirm`] (registration and email change) |
//! | `POST /api/v1/user/password/forgot` | [`password_forgot`] |
//! | `GET /api/v1/user/password/reset?token=` | [`password_reset_page`] (the mailed link) |
//! | `POST /api/v1/user/password/reset` | [`password_reset`] |
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
//!
//! An unconfirmed account lasts as long as its confirmation link; registering its address
//! again replaces it, and registering a confirmed address answers as a fresh registration
//! does while mailing the owner instead (see [`super::store`]). Resend and password reset
//! requests answer the same whether or not the address has an account. A password reset
//! ends every session and refresh token of the account.

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
use celeriac_platform::config::{ConfigError, EnvSource, ProcessEnv};
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

use super::pages::{Page, Submitted};
use super::postgres::PgAccounts;
use super::secrets::{Token, TokenDigest, decoy_hash, hash_password, verify_password};
use super::store::{
    AccountError, MemoryAccounts, NewUser, Refresh, SharedAccounts, TokenKind, User,
};

/// Registration path.
pub const REGISTRATION_PATH: &str = "/api/v1/user/registration";
/// Asks for a new confirmation link.
pub const RESEND_PATH: &str = "/api/v1/user/registration/resend";
/// Confirmation path (the link mailed for registration and for an email change): `GET`
/// shows the page, `POST` confirms.
pub const CONFIRM_PATH: &str = "/api/v1/user/confirm";
/// Asks for a password reset link.
pub const PASSWORD_FORGOT_PATH: &str = "/api/v1/user/password/forgot";
/// The mailed reset link: `GET` shows the page, `POST` sets the new password.
pub const PASSWORD_RESET_PATH: &str = "/api/v1/user/password/reset";
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

/// Resends per client IP: 10 an hour, in bursts of 5; fails closed (each may send a mail).
pub const RESEND_PER_IP: Limit = Limit::gcra(
    "resend-ip",
    10,
    Duration::from_secs(3600),
    FailurePolicy::Closed,
)
.with_burst(5);
/// Resends per address: 3 an hour; fails closed.
pub const RESEND_PER_ADDRESS: Limit = Limit::sliding_log(
    "resend-address",
    3,
    Duration::from_secs(3600),
    FailurePolicy::Closed,
);
/// Password reset requests per client IP: 10 an hour, in bursts of 5; fails closed.
pub const PASSWORD_RESET_PER_IP: Limit = Limit::gcra(
    "password-reset-ip",
    10,
    Duration::from_secs(3600),
    FailurePolicy::Closed,
)
.with_burst(5);
/// Password reset requests per address: 3 an hour; fails closed.
pub const PASSWORD_RESET_PER_ADDRESS: Limit = Limit::sliding_log(
    "password-reset-address",
    3,
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
    /// How long a mailed confirmation link works, and so how long an unconfirmed account
    /// waits for it (`CONFIRMATION_TTL_HOURS`, default 24; `CONFIRMATION_TTL_SECONDS`, when
    /// set, takes its place, for short-lived links in tests).
    pub confirmation_ttl: Duration,
    /// How long a mailed password reset link works (`PASSWORD_RESET_TTL_MINUTES`, default
    /// 60).
    pub password_reset_ttl: Duration,
    /// How long a refresh token lives (`REFRESH_TOKEN_TTL_DAYS`, default 30).
    pub refresh_ttl: Duration,
}

impl AccountsConfig {
    /// Reads the settings; `default_base_url` applies when `PUBLIC_BASE_URL` is unset (the
    /// dev runner's own address), and without one it is an error.
    pub fn from_env(default_base_url: Option<&str>) -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv, default_base_url)
    }

    /// Reads the settings from `env`; see [`AccountsConfig::from_env`].
    pub fn from_source(
        env: &impl EnvSource,
        default_base_url: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let var = |key: &str| env.var(key);
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
        let confirmation_ttl = if var("CONFIRMATION_TTL_SECONDS").is_some() {
            Duration::from_secs(number("CONFIRMATION_TTL_SECONDS", 1)?)
        } else {
            Duration::from_secs(number("CONFIRMATION_TTL_HOURS", 24)? * 3600)
        };
        Ok(Self {
            public_base_url: public_base_url.map(|url| url.trim_end_matches('/').to_owned()),
            confirmation_ttl,
            password_reset_ttl: Duration::from_secs(number("PASSWORD_RESET_TTL_MINUTES", 60)? * 60),
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
    /// Enqueues `send_email`; `None` in a function that sends no mail (it is given no
    /// queue).
    pub tasks: Option<TaskClient>,
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
        Self::open_with(adapters, Some(tasks), config)
    }

    /// The same for an endpoint that sends no mail (login, confirm...), which then needs no
    /// queue.
    pub fn open_without_mail(adapters: &Adapters, config: AccountsConfig) -> anyhow::Result<Self> {
        Self::open_with(adapters, None, config)
    }

    fn open_with(
        adapters: &Adapters,
        tasks: Option<TaskClient>,
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

/// Runs one accounts endpoint that sends no mail as a Lambda function: it is given no
/// queue (least privilege), and one that tried to mail would fail.
pub async fn run_lambda_endpoint_without_mail(
    service: &str,
    router: fn(AccountsApi) -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |_, adapters| {
        Ok(router(AccountsApi::open_without_mail(
            adapters,
            AccountsConfig::from_env(None)?,
        )?))
    })
    .await
}

/// Runs one accounts endpoint that mails (registration, resend, reset request, email
/// change) as a Lambda function.
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

/// Runs one page of a mailed link as a Lambda function. A page reads nothing and writes
/// nothing, so no adapter is opened (and its function holds no permission).
pub async fn run_lambda_page(
    service: &str,
    router: fn() -> Router,
) -> Result<(), lambda_http::Error> {
    celeriac_platform::telemetry::init();
    let config = celeriac_platform::Config::from_env(service)?;
    celeriac_platform::http::run_lambda(celeriac_platform::http::app(router(), &config.http)).await
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

/// `POST /api/v1/user/registration/resend`.
pub fn registration_resend(api: AccountsApi) -> Router {
    Router::new()
        .route(RESEND_PATH, post(resend_confirmation))
        .with_state(api)
}

/// `GET /api/v1/user/confirm?token=`: the page of the mailed link.
pub fn confirm_page() -> Router {
    Router::new().route(CONFIRM_PATH, get(show_confirm_page))
}

/// `POST /api/v1/user/confirm`.
pub fn confirm(api: AccountsApi) -> Router {
    Router::new()
        .route(CONFIRM_PATH, post(confirm_email))
        .with_state(api)
}

/// `POST /api/v1/user/password/forgot`.
pub fn password_forgot(api: AccountsApi) -> Router {
    Router::new()
        .route(PASSWORD_FORGOT_PATH, post(request_password_reset))
        .with_state(api)
}

/// `GET /api/v1/user/password/reset?token=`: the page of the mailed link.
pub fn password_reset_page() -> Router {
    Router::new().route(PASSWORD_RESET_PATH, get(show_password_reset_page))
}

/// `POST /api/v1/user/password/reset`.
pub fn password_reset(api: AccountsApi) -> Router {
    Router::new()
        .route(PASSWORD_RESET_PATH, post(reset_password))
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
        .merge(registration_resend(api.clone()))
        .merge(confirm_page())
        .merge(confirm(api.clone()))
        .merge(password_forgot(api.clone()))
        .merge(password_reset_page())
        .merge(password_reset(api.clone()))
        .merge(login(api.clone()))
        .merge(refresh(api.clone()))
        .merge(logout(api.clone()))
        .merge(email_change(api.clone()))
        .merge(me(api))
}

/// The address in `field`, trimmed and lower-cased, when the mailer can send to it (its
/// own check, [`celeriac_mail::parse_recipient`], so no account is created that can never
/// get its mail) and its domain is a dotted one (no `user@localhost`); the real test is
/// the confirmation mail.
pub fn normalize_email(raw: &str, field: &str) -> Result<String, Error> {
    let email = raw.trim().to_lowercase();
    let invalid = || Error::BadRequest(format!("{field}: not a valid email address"));
    let address = celeriac_mail::parse_recipient(&email).map_err(|_| invalid())?;
    let domain = address.domain();
    if email.len() > 254 || !domain.contains('.') || domain.ends_with('.') {
        return Err(invalid());
    }
    Ok(email)
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
    let email = normalize_email(&body.email, "email")?;
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
    let created = api
        .store
        .create_user(NewUser {
            email: email.clone(),
            name: name.clone(),
            password_hash,
            pending_until: Utc::now() + chrono_duration(api.config.confirmation_ttl),
        })
        .await;
    let (user, task_id) = match created {
        Ok(user) => {
            let task_id = confirm_registration(&api, &base_url, &user).await?;
            tracing::info!(user_id = %user.id, task_id = %task_id, "user registered; confirmation email enqueued");
            (user, task_id)
        }
        Err(AccountError::EmailTaken) => {
            // The address has a confirmed account. Saying so would tell anyone which
            // addresses have accounts; the answer is the one a new registration gets, and
            // the owner is mailed instead (nothing about the account changes).
            let args = SendEmailArgs::account_exists(&email);
            let task_id = enqueue_email(&api, &args, SendOptions::default()).await?;
            tracing::info!(task_id = %task_id, "registration of a confirmed address; owner mailed");
            let stand_in = User {
                id: Uuid::new_v4(),
                email,
                name,
                confirmed_at: None,
                created_at: Utc::now(),
            };
            (stand_in, task_id)
        }
        Err(err) => return Err(err.into()),
    };
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

/// Mails a new pending `user` its confirmation link. When the mail cannot be enqueued the
/// registration is undone, rather than leave an account nobody can activate.
async fn confirm_registration(
    api: &AccountsApi,
    base_url: &str,
    user: &User,
) -> Result<String, Error> {
    let sent = send_link(
        api,
        base_url,
        user,
        &user.email,
        TokenKind::Registration,
        &Token::generate(),
    )
    .await;
    match sent {
        Ok(Some(task_id)) => Ok(task_id),
        Ok(None) => Err(Error::internal(
            "a registration just stored was no longer pending",
        )),
        Err(err) => {
            if let Err(undo) = api.store.delete_unconfirmed_user(user.id).await {
                tracing::error!(user_id = %user.id, error = %undo, "could not undo a registration whose email failed");
            }
            Err(err)
        }
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
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

/// Stores a one-time token for `kind` (killing the user's earlier link of that kind) and
/// enqueues the email carrying its link; the email's task id, or `None` when the store
/// refused the token (a registration no longer pending).
async fn send_link(
    api: &AccountsApi,
    base_url: &str,
    user: &User,
    to: &str,
    kind: TokenKind,
    token: &Token,
) -> Result<Option<String>, Error> {
    let ttl = match kind {
        TokenKind::PasswordReset => api.config.password_reset_ttl,
        TokenKind::Registration | TokenKind::EmailChange { .. } => api.config.confirmation_ttl,
    };
    let stored = api
        .store
        .put_email_token(
            &token.digest(),
            user.id,
            kind.clone(),
            Utc::now() + chrono_duration(ttl),
        )
        .await?;
    if !stored {
        return Ok(None);
    }
    let args = match kind {
        TokenKind::Registration => SendEmailArgs::registration_confirmation(
            to,
            format!("{base_url}{CONFIRM_PATH}?token={}", token.reveal()),
        ),
        TokenKind::EmailChange { .. } => SendEmailArgs::email_change_confirmation(
            to,
            format!("{base_url}{CONFIRM_PATH}?token={}", token.reveal()),
        ),
        TokenKind::PasswordReset => SendEmailArgs::password_reset(
            to,
            format!("{base_url}{PASSWORD_RESET_PATH}?token={}", token.reveal()),
        )
        .with("valid_minutes", ttl.as_secs() / 60),
    }
    .with("username", user.name.clone())
    .with("valid_hours", ttl.as_secs() / 3600);
    // One email per token, however often this enqueue is retried.
    let options = SendOptions {
        idempotency_key: Some(format!(
            "confirmation-email:{}",
            hex::encode(token.digest().0)
        )),
        ..SendOptions::default()
    };
    enqueue_email(api, &args, options).await.map(Some)
}

async fn enqueue_email(
    api: &AccountsApi,
    args: &SendEmailArgs,
    options: SendOptions,
) -> Result<String, Error> {
    let tasks = api.tasks.as_ref().ok_or_else(|| {
        Error::internal("this function has no task queue: run it with run_lambda_endpoint")
    })?;
    celeriac_mail::enqueue(tasks, args, options)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "email not enqueued");
            Error::Unavailable {
                component: "queue",
                reason: e.to_string(),
            }
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressRequest {
    email: String,
}

/// The answer to a resend or reset request, the same whether or not the address has an
/// account (and so whether or not a mail went out).
fn accepted(admission: &Admission, status: &'static str) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": status,
            "message": "if the address has an account waiting for this, a link is on its way",
        })),
    )
        .into_response();
    write_limit_headers(response.headers_mut(), admission);
    response
}

/// Both limits of a request about an address (per client, then per address); the
/// per-address admission, whose `RateLimit-*` headers the answer carries.
async fn enforce_address_limits(
    api: &AccountsApi,
    ip: std::net::IpAddr,
    email: &str,
    per_ip: &Limit,
    per_address: &Limit,
) -> Result<Admission, Error> {
    enforce(&*api.limiter, per_ip, &LimitKey::ip(ip)).await?;
    Ok(enforce(&*api.limiter, per_address, &LimitKey::user(email)).await?)
}

async fn resend_confirmation(
    State(api): State<AccountsApi>,
    ClientIp(ip): ClientIp,
    context: Option<Extension<RequestContext>>,
    JsonBody(body): JsonBody<AddressRequest>,
) -> Result<Response, Error> {
    let email = normalize_email(&body.email, "email")?;
    let base_url = public_base_url(&api, context.as_deref())?;
    let admission =
        enforce_address_limits(&api, ip, &email, &RESEND_PER_IP, &RESEND_PER_ADDRESS).await?;
    if let Some((user, _)) = api.store.user_by_email(&email).await?
        && user.confirmed_at.is_none()
    {
        // The new link replaces the old one, and the account waits as long as it works.
        let sent = send_link(
            &api,
            &base_url,
            &user,
            &user.email,
            TokenKind::Registration,
            &Token::generate(),
        )
        .await?;
        if let Some(task_id) = sent {
            tracing::info!(user_id = %user.id, task_id = %task_id, "confirmation link resent");
        }
    }
    Ok(accepted(&admission, "confirmation_resent"))
}

async fn request_password_reset(
    State(api): State<AccountsApi>,
    ClientIp(ip): ClientIp,
    context: Option<Extension<RequestContext>>,
    JsonBody(body): JsonBody<AddressRequest>,
) -> Result<Response, Error> {
    let email = normalize_email(&body.email, "email")?;
    let base_url = public_base_url(&api, context.as_deref())?;
    let admission = enforce_address_limits(
        &api,
        ip,
        &email,
        &PASSWORD_RESET_PER_IP,
        &PASSWORD_RESET_PER_ADDRESS,
    )
    .await?;
    // Only a confirmed account has a password to reset: a pending one registers again.
    if let Some((user, _)) = api.store.user_by_email(&email).await?
        && user.confirmed_at.is_some()
    {
        let sent = send_link(
            &api,
            &base_url,
            &user,
            &user.email,
            TokenKind::PasswordReset,
            &Token::generate(),
        )
        .await?;
        if let Some(task_id) = sent {
            tracing::info!(user_id = %user.id, task_id = %task_id, "password reset link sent");
        }
    }
    Ok(accepted(&admission, "reset_requested"))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn show_confirm_page(Query(query): Query<TokenQuery>) -> Page {
    Page::token_form(
        query.token.as_deref(),
        "Confirm your email address",
        "Press the button to confirm this address for your account.",
        "Confirm my email",
        false,
    )
}

async fn show_password_reset_page(Query(query): Query<TokenQuery>) -> Page {
    Page::token_form(
        query.token.as_deref(),
        "Choose a new password",
        "Setting a new password signs out every session of your account.",
        "Set the new password",
        true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    token: String,
}

async fn confirm_email(
    State(api): State<AccountsApi>,
    submitted: Submitted<ConfirmRequest>,
) -> Response {
    let confirmed = redeem_confirmation(&api, &submitted.body.token).await;
    match (confirmed, submitted.from_form) {
        (Ok(user), false) => axum::Json(json!({ "confirmed": true, "user": user })).into_response(),
        (Ok(_), true) => Page::message(
            StatusCode::OK,
            "Email address confirmed",
            "Your address is confirmed. You can log in now.",
        )
        .into_response(),
        (Err(err), false) => err.into_response(),
        (Err(err), true) => Page::failed("Not confirmed", &err).into_response(),
    }
}

async fn redeem_confirmation(api: &AccountsApi, token: &str) -> Result<User, Error> {
    if token.trim().is_empty() {
        return Err(Error::BadRequest("token: required".into()));
    }
    match api.store.redeem_email_token(&TokenDigest::of(token)).await {
        Ok(Some(user)) => {
            tracing::info!(user_id = %user.id, "email confirmed");
            Ok(user)
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
struct ResetRequest {
    token: String,
    password: SecretString,
}

async fn reset_password(
    State(api): State<AccountsApi>,
    submitted: Submitted<ResetRequest>,
) -> Response {
    let reset = set_new_password(&api, submitted.body).await;
    match (reset, submitted.from_form) {
        (Ok(()), false) => axum::Json(json!({ "status": "password_changed" })).into_response(),
        (Ok(()), true) => Page::message(
            StatusCode::OK,
            "Password changed",
            "Your new password is set, and every session of your account was signed out. \
             Log in with the new password.",
        )
        .into_response(),
        (Err(err), false) => err.into_response(),
        (Err(err), true) => Page::failed("Password not changed", &err).into_response(),
    }
}

async fn set_new_password(api: &AccountsApi, body: ResetRequest) -> Result<(), Error> {
    if body.token.trim().is_empty() {
        return Err(Error::BadRequest("token: required".into()));
    }
    check_password(secrecy::ExposeSecret::expose_secret(&body.password))?;
    let password_hash = hash_password(body.password)
        .await
        .map_err(Error::internal)?;
    let user = api
        .store
        .reset_password(&TokenDigest::of(&body.token), password_hash)
        .await?
        .ok_or_else(|| Error::BadRequest("token: invalid, already used or expired".into()))?;
    // Whoever knew the old password may hold a session: none survives the reset (their
    // refresh tokens were revoked with it).
    let revoked = api.sessions.revoke_all(&user.id.to_string()).await?;
    tracing::info!(user_id = %user.id, sessions_revoked = revoked, "password reset");
    Ok(())
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
    let email = normalize_email(&body.email, "email")
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
    let new_email = normalize_email(&body.new_email, "new_email")?;
    let base_url = public_base_url(&api, context.as_deref())?;
    let user = signed_in_user(&api, &auth).await?;
    if new_email == user.email {
        return Err(Error::BadRequest(
            "new_email: this is already the account's address".into(),
        ));
    }
    // A pending registration of the address does not own it (confirming the change
    // removes it); a confirmed account does.
    if let Some((holder, _)) = api.store.user_by_email(&new_email).await?
        && holder.confirmed_at.is_some()
    {
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
    let task_id = send_link(
        &api,
        &base_url,
        &user,
        &new_email,
        TokenKind::EmailChange {
            new_email: new_email.clone(),
        },
        &Token::generate(),
    )
    .await?
    .ok_or_else(|| Error::Unauthorized("the account of this session no longer exists".into()))?;
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
