//! The calendar's settings, read once from the environment at init.

use std::time::Duration;

use celeriac_platform::config::{ConfigError, EnvSource, ProcessEnv};
use secrecy::SecretString;

use crate::keyring::KeyRingSource;
use crate::oauth::{
    DEFAULT_AUTHORIZATION_URL, DEFAULT_REVOKE_URL, DEFAULT_TOKEN_URL, OAuthSettings,
};
use crate::provider::google::{Accounts, DEFAULT_API_URL, GoogleConfig};

/// The seed's cache lifetime: 6 minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(360);
/// Lifetime asked for a new channel: a week (Google's default and usual maximum for
/// events).
pub const DEFAULT_CHANNEL_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Which provider the calendar talks to.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// Google Calendar v3.
    Google(GoogleConfig),
    /// The in-memory fixture calendars.
    Fixture,
}

/// Settings of the calendar endpoints and tasks.
#[derive(Debug, Clone)]
pub struct CalendarConfig {
    /// `CALENDAR_PROVIDER` (`google` or `fixture`). Unset: Google when `GOOGLE_CLIENT_ID`
    /// is set, else the fixture under `celeriac dev` and an error on Lambda.
    pub provider: ProviderConfig,
    /// How long cached reads live (`CALENDAR_CACHE_TTL_SECONDS`, 360).
    pub cache_ttl: Duration,
    /// Lifetime asked for new channels (`CALENDAR_CHANNEL_TTL_SECONDS`, 604800).
    pub channel_ttl: Duration,
    /// Where the provider posts notifications (`CALENDAR_WEBHOOK_URL`); unset, it is
    /// `PUBLIC_BASE_URL` (or the dev runner's address, or the API Gateway domain of the
    /// setup request) followed by `/webhook/google-calendar`.
    pub webhook_url: Option<String>,
    /// `PUBLIC_BASE_URL`, or the dev runner's own address.
    pub public_base_url: Option<String>,
    /// Where Google sends the browser back after consent (`CALENDAR_OAUTH_REDIRECT_URL`,
    /// registered with the OAuth client); unset, `PUBLIC_BASE_URL` (or the API Gateway
    /// domain of the connect request) followed by `/oauth/google-calendar/callback`.
    pub oauth_redirect_url: Option<String>,
}

impl CalendarConfig {
    /// Reads the process environment; `embedded` under the dev runner, whose address is
    /// `default_base_url`.
    pub fn from_env(embedded: bool, default_base_url: Option<&str>) -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv, embedded, default_base_url)
    }

    /// Reads any [`EnvSource`]; tests pass a map.
    pub fn from_source(
        env: &impl EnvSource,
        embedded: bool,
        default_base_url: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let google = || -> Result<ProviderConfig, ConfigError> {
            let required = |key: &'static str| {
                env.var(key).ok_or_else(|| {
                    ConfigError::new(key, "required for the Google Calendar provider")
                })
            };
            let or_default = |key: &'static str, default: &str| {
                env.var(key).unwrap_or_else(|| default.to_owned())
            };
            let single_tenant = match env.var("CALENDAR_SINGLE_TENANT").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => {
                    return Err(ConfigError::new(
                        "CALENDAR_SINGLE_TENANT",
                        "expected true or false",
                    ));
                }
            };
            let accounts = if single_tenant {
                Accounts::SingleTenant(SecretString::from(required("GOOGLE_REFRESH_TOKEN")?))
            } else {
                if env.var("GOOGLE_REFRESH_TOKEN").is_some() {
                    // One account for every user is a choice an operator makes on purpose.
                    return Err(ConfigError::new(
                        "GOOGLE_REFRESH_TOKEN",
                        "one account would serve every user: set CALENDAR_SINGLE_TENANT=true to mean that, or unset it so each user connects their own",
                    ));
                }
                let token_keys = match (
                    env.var("CALENDAR_TOKEN_KEYS_SECRET_ARN"),
                    env.var("CALENDAR_TOKEN_KEYS"),
                ) {
                    (Some(arn), _) => Some(KeyRingSource::SecretArn(arn)),
                    (None, Some(document)) => {
                        Some(KeyRingSource::Inline(SecretString::from(document)))
                    }
                    (None, None) => None,
                };
                Accounts::PerUser { token_keys }
            };
            Ok(ProviderConfig::Google(GoogleConfig {
                api_url: or_default("GOOGLE_CALENDAR_API_URL", DEFAULT_API_URL),
                oauth: OAuthSettings {
                    authorization_url: or_default(
                        "GOOGLE_OAUTH_AUTHORIZATION_URL",
                        DEFAULT_AUTHORIZATION_URL,
                    ),
                    token_url: or_default("GOOGLE_OAUTH_TOKEN_URL", DEFAULT_TOKEN_URL),
                    revoke_url: or_default("GOOGLE_OAUTH_REVOKE_URL", DEFAULT_REVOKE_URL),
                    client_id: required("GOOGLE_CLIENT_ID")?,
                    client_secret: SecretString::from(required("GOOGLE_CLIENT_SECRET")?),
                    timeout: Duration::from_secs(seconds(env, "GOOGLE_TIMEOUT_SECONDS", 10)?),
                },
                accounts,
            }))
        };
        let provider = match env.var("CALENDAR_PROVIDER").as_deref() {
            Some("google") => google()?,
            Some("fixture") => ProviderConfig::Fixture,
            Some(_) => {
                return Err(ConfigError::new(
                    "CALENDAR_PROVIDER",
                    "expected google or fixture",
                ));
            }
            None if env.var("GOOGLE_CLIENT_ID").is_some() => google()?,
            None if embedded => ProviderConfig::Fixture,
            None => {
                return Err(ConfigError::new(
                    "CALENDAR_PROVIDER",
                    "set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (and the token keys), or CALENDAR_PROVIDER=fixture",
                ));
            }
        };
        let url = |key: &'static str| -> Result<Option<String>, ConfigError> {
            match env.var(key) {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Ok(Some(url.trim_end_matches('/').to_owned()))
                }
                Some(_) => Err(ConfigError::new(key, "must start with https:// or http://")),
                None => Ok(None),
            }
        };
        Ok(Self {
            provider,
            cache_ttl: Duration::from_secs(seconds(
                env,
                "CALENDAR_CACHE_TTL_SECONDS",
                DEFAULT_CACHE_TTL.as_secs(),
            )?),
            channel_ttl: Duration::from_secs(seconds(
                env,
                "CALENDAR_CHANNEL_TTL_SECONDS",
                DEFAULT_CHANNEL_TTL.as_secs(),
            )?),
            webhook_url: url("CALENDAR_WEBHOOK_URL")?,
            public_base_url: url("PUBLIC_BASE_URL")?
                .or_else(|| default_base_url.map(|u| u.trim_end_matches('/').to_owned())),
            oauth_redirect_url: url("CALENDAR_OAUTH_REDIRECT_URL")?,
        })
    }
}

fn seconds(env: &impl EnvSource, key: &'static str, default: u64) -> Result<u64, ConfigError> {
    env.var(key).map_or(Ok(default), |v| {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::new(key, "must be a whole number of seconds above 0"))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_fixture_is_the_default_only_under_the_dev_runner() {
        let dev = CalendarConfig::from_source(&env(&[]), true, Some("http://127.0.0.1:3000/"))
            .expect("dev");
        assert!(matches!(dev.provider, ProviderConfig::Fixture));
        assert_eq!(dev.cache_ttl, Duration::from_secs(360));
        assert_eq!(
            dev.public_base_url.as_deref(),
            Some("http://127.0.0.1:3000")
        );
        let lambda = CalendarConfig::from_source(&env(&[]), false, None);
        assert_eq!(lambda.expect_err("no provider").key, "CALENDAR_PROVIDER");
    }

    #[test]
    fn google_is_per_user_and_hides_the_secrets() {
        let partial = env(&[("CALENDAR_PROVIDER", "google"), ("GOOGLE_CLIENT_ID", "id")]);
        let err = CalendarConfig::from_source(&partial, true, None).expect_err("no secret");
        assert_eq!(err.key, "GOOGLE_CLIENT_SECRET");
        let mut full = partial.clone();
        full.insert("GOOGLE_CLIENT_SECRET".into(), "very-secret".into());
        full.insert("CALENDAR_TOKEN_KEYS".into(), "keys-secret".into());
        full.insert("CALENDAR_CACHE_TTL_SECONDS".into(), "60".into());
        let config = CalendarConfig::from_source(&full, false, None).expect("google");
        assert_eq!(config.cache_ttl, Duration::from_secs(60));
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("keys-secret"));
        let ProviderConfig::Google(google) = config.provider else {
            panic!("google expected");
        };
        assert_eq!(google.api_url, DEFAULT_API_URL);
        assert_eq!(google.oauth.revoke_url, DEFAULT_REVOKE_URL);
        assert!(matches!(
            google.accounts,
            Accounts::PerUser {
                token_keys: Some(KeyRingSource::Inline(_))
            }
        ));
    }

    #[test]
    fn one_account_for_everyone_must_be_asked_for() {
        let mut shared = env(&[
            ("GOOGLE_CLIENT_ID", "id"),
            ("GOOGLE_CLIENT_SECRET", "very-secret"),
            ("GOOGLE_REFRESH_TOKEN", "refresh-secret"),
        ]);
        let err = CalendarConfig::from_source(&shared, false, None).expect_err("implicit");
        assert_eq!(err.key, "GOOGLE_REFRESH_TOKEN");
        shared.insert("CALENDAR_SINGLE_TENANT".into(), "true".into());
        let config = CalendarConfig::from_source(&shared, false, None).expect("single tenant");
        assert!(!format!("{config:?}").contains("refresh-secret"));
        let ProviderConfig::Google(google) = config.provider else {
            panic!("google expected");
        };
        assert!(matches!(google.accounts, Accounts::SingleTenant(_)));
        shared.remove("GOOGLE_REFRESH_TOKEN");
        let err = CalendarConfig::from_source(&shared, false, None).expect_err("no token");
        assert_eq!(err.key, "GOOGLE_REFRESH_TOKEN");
    }

    #[test]
    fn bad_numbers_and_urls_name_their_variable() {
        for (key, value) in [
            ("CALENDAR_CACHE_TTL_SECONDS", "0"),
            ("CALENDAR_CHANNEL_TTL_SECONDS", "a week"),
            ("CALENDAR_WEBHOOK_URL", "example.com/hook"),
            ("CALENDAR_PROVIDER", "outlook"),
            ("CALENDAR_OAUTH_REDIRECT_URL", "example.com/callback"),
        ] {
            let err = CalendarConfig::from_source(&env(&[(key, value)]), true, None)
                .expect_err("invalid");
            assert_eq!(err.key, key);
        }
    }
}
