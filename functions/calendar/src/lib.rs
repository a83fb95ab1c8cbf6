//! The calendar backend (seed 001): Google Calendar push notifications, incremental sync
//! into the database, and cached reads of each user's events and calendars.
//!
//! - [`store`]: the `CalendarStore` port (channels, sync state, events, each user's sealed
//!   Google token) and its in-memory adapter; [`postgres`]: the PostgreSQL adapter;
//! - [`provider`]: the `CalendarProvider` port, its Google Calendar v3 adapter (each
//!   user's calls with that user's own token) and the fixture provider;
//! - [`oauth`]: connecting a user's Google Calendar (authorization code with PKCE);
//!   [`credentials`]: their refresh tokens, sealed with [`keyring`] (AES-256-GCM under
//!   the operator's rotating keys);
//! - [`sync`]: the `process_calendar_webhook` task; [`channels`]: opening, closing and the
//!   daily `renew_calendar_channels` task;
//! - [`cache`]: the seed's cache keys over `celeriac_cache`;
//! - [`http`]: the endpoints, one router each; [`config`]: settings; [`secrets`]:
//!   channel tokens.

pub mod cache;
pub mod channels;
pub mod config;
pub mod credentials;
pub mod http;
pub mod keyring;
pub mod oauth;
pub mod postgres;
pub mod provider;
pub mod secrets;
pub mod store;
pub mod sync;

use std::sync::Arc;

use anyhow::Context;
use celeriac_kv::SharedKv;
use celeriac_platform_functions::{Adapters, Database};
use celeriac_tasks::Registry;

use crate::cache::CalendarCache;
use crate::config::{CalendarConfig, ProviderConfig};
use crate::credentials::CredentialVault;
use crate::keyring::LazyKeyRing;
use crate::oauth::{OAuthClient, OAuthFlow};
use crate::provider::SharedProvider;
use crate::provider::fixture::FixtureProvider;
use crate::provider::google::{Accounts, GoogleCalendar, RefreshTokens};
use crate::store::{MemoryCalendarStore, SharedCalendarStore};

/// What the calendar's endpoints and tasks share: one store, one provider, one cache.
#[derive(Debug, Clone)]
pub struct CalendarBackend {
    /// The key-value store (cache, sessions, started OAuth connections).
    pub kv: SharedKv,
    /// Connecting users' own Google accounts; `None` with the fixture provider and in
    /// single-tenant mode, where there is nothing to connect.
    pub oauth: Option<Arc<OAuthFlow>>,
    /// Channels, sync state and events.
    pub store: SharedCalendarStore,
    /// The calendar provider.
    pub provider: SharedProvider,
    /// The same provider when it is the fixture (the dev runner's control routes use it).
    pub fixture: Option<Arc<FixtureProvider>>,
    /// Cached reads.
    pub cache: CalendarCache,
    /// Settings.
    pub config: Arc<CalendarConfig>,
}

impl CalendarBackend {
    /// The backend over `adapters`: PostgreSQL (or the in-memory store under the dev
    /// runner), the cache in the key-value store, and the provider `config` names. Fails
    /// when a required adapter is not configured.
    pub fn open(adapters: &Adapters, config: CalendarConfig) -> anyhow::Result<Self> {
        let store: SharedCalendarStore = match &adapters.database {
            Some(Database::Postgres(pool)) => {
                Arc::new(postgres::PgCalendarStore::new(pool.clone()))
            }
            Some(Database::Memory) => Arc::new(MemoryCalendarStore::new()),
            None => {
                anyhow::bail!(
                    "the calendar needs a database: set DATABASE_URL or DATABASE_SECRET_ARN"
                )
            }
        };
        // Invalidations must reach every function's reads: a cache in one process's
        // memory would not see them, so outside the dev runner Redis is required.
        let kv = adapters
            .kv
            .clone()
            .context("the calendar needs Redis for its cache: set REDIS_URL")?;
        let mut oauth = None;
        let (provider, fixture): (SharedProvider, _) = match &config.provider {
            ProviderConfig::Google(google) => match &google.accounts {
                Accounts::SingleTenant(token) => (
                    Arc::new(GoogleCalendar::new(
                        google,
                        RefreshTokens::SingleTenant(token.clone()),
                    )?),
                    None,
                ),
                Accounts::PerUser { token_keys } => {
                    let keys = Arc::new(LazyKeyRing::new(token_keys.clone()));
                    let vault = CredentialVault::new(store.clone(), keys);
                    oauth = Some(Arc::new(OAuthFlow::new(
                        OAuthClient::new(&google.oauth)?,
                        vault.clone(),
                        kv.clone(),
                    )));
                    (
                        Arc::new(GoogleCalendar::new(google, RefreshTokens::PerUser(vault))?),
                        None,
                    )
                }
            },
            ProviderConfig::Fixture => {
                let fixture = Arc::new(FixtureProvider::new());
                (fixture.clone(), Some(fixture))
            }
        };
        let cache = CalendarCache::new(kv.clone(), config.cache_ttl);
        Ok(Self {
            kv,
            oauth,
            store,
            provider,
            fixture,
            cache,
            config: Arc::new(config),
        })
    }

    /// A backend of the given parts (tests), without a connect flow ([`Self::with_oauth`]
    /// adds one).
    pub fn new(
        store: SharedCalendarStore,
        provider: SharedProvider,
        kv: SharedKv,
        cache: CalendarCache,
        config: CalendarConfig,
    ) -> Self {
        Self {
            kv,
            oauth: None,
            store,
            provider,
            fixture: None,
            cache,
            config: Arc::new(config),
        }
    }

    /// This backend with users connecting their Google accounts through `flow`.
    #[must_use]
    pub fn with_oauth(mut self, flow: OAuthFlow) -> Self {
        self.oauth = Some(Arc::new(flow));
        self
    }

    /// `process_calendar_webhook` over this backend.
    pub fn process_webhook_task(&self) -> sync::ProcessCalendarWebhook {
        sync::ProcessCalendarWebhook::new(
            self.store.clone(),
            self.provider.clone(),
            self.cache.clone(),
        )
    }

    /// `renew_calendar_channels` over this backend.
    pub fn renew_channels_task(&self) -> channels::RenewCalendarChannels {
        channels::RenewCalendarChannels::new(
            self.store.clone(),
            self.provider.clone(),
            self.config.channel_ttl,
        )
    }

    /// `registry` with the calendar's tasks added.
    pub fn register(&self, registry: Registry) -> Registry {
        registry
            .register(self.process_webhook_task())
            .register(self.renew_channels_task())
    }
}
