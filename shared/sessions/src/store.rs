//! The session store: creating, checking, ending and revoking sessions (see the crate doc
//! for the key layout and why it is cluster-safe).

use std::sync::Arc;
use std::time::Duration;

use celeriac_kv::{KvError, SharedKv};
use chrono::{DateTime, Utc};
use http::HeaderValue;
use rand::TryRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cookie::{self, SameSite};

/// Bytes of randomness in a token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// How sessions are kept and presented.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// First segment of every key (`session`).
    pub prefix: String,
    /// A session unused this long ends; each use restarts the clock (14 days).
    pub idle_timeout: Duration,
    /// A session ends this long after login however often it is used (30 days); also
    /// the cookie's `Max-Age`.
    pub max_lifetime: Duration,
    /// `last_seen` is rewritten only when older than this (60 s), so most requests cost
    /// one round trip.
    pub touch_interval: Duration,
    /// Name of the session cookie (`session`).
    pub cookie_name: String,
    /// The cookie's `SameSite` (`Lax`).
    pub same_site: SameSite,
    /// Whether the cookie is marked `Secure` (true; turn off only for plain-HTTP local use).
    pub secure_cookie: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            prefix: "session".into(),
            idle_timeout: Duration::from_secs(14 * 24 * 3600),
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            touch_interval: Duration::from_secs(60),
            cookie_name: "session".into(),
            same_site: SameSite::Lax,
            secure_cookie: true,
        }
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The token is malformed, unknown, logged out, revoked or expired. Not retryable:
    /// the client must log in.
    #[error("session is missing, invalid or expired")]
    Invalid,
    /// The store failed; nothing was decided. Retryable when the store is unavailable.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The operating system's random number generator failed, so no token can be made.
    #[error("cannot generate a session token: {0}")]
    Randomness(String),
}

impl SessionError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Invalid => false,
            Self::Store(err) => err.is_retryable(),
            Self::Randomness(_) => true,
        }
    }
}

impl From<SessionError> for celeriac_platform::Error {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Invalid => Self::Unauthorized(err.to_string()),
            SessionError::Store(err) => err.into(),
            SessionError::Randomness(_) => Self::internal(err),
        }
    }
}

/// What the store knows about a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whose session it is.
    pub user_id: String,
    /// When the user logged in.
    pub created_at: DateTime<Utc>,
    /// When the session was last used (to within [`SessionConfig::touch_interval`]).
    pub last_seen: DateTime<Utc>,
}

/// A session token as the client holds it. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl SessionToken {
    fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| SessionError::Randomness(e.to_string()))?;
        Ok(Self(hex::encode(bytes)))
    }

    /// A presented token, if it has the shape of one this crate issues.
    pub(crate) fn parse(presented: &str) -> Option<Self> {
        let well_formed = presented.len() == TOKEN_BYTES * 2
            && presented
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(presented.to_owned()))
    }

    /// The token, for the response that hands it to the client (or `Sessions` calls).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store is keyed by: the SHA-256 of the token, in hex.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A session just created by [`Sessions::create`].
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The token to give the client (body and/or [`Sessions::set_cookie`]); shown only now.
    pub token: SessionToken,
    /// The stored record.
    pub session: Session,
}

/// The session store; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    kv: SharedKv,
    config: SessionConfig,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("adapter", &self.inner.kv.adapter())
            .field("config", &self.inner.config)
            .finish()
    }
}

fn elapsed_since(then: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    // A record from a host whose clock runs ahead counts as just written.
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

impl Sessions {
    /// Sessions kept in `kv`.
    ///
    /// # Panics
    ///
    /// When `config.cookie_name` is not a valid cookie name (letters, digits and
    /// ``!#$%&'*+-.^_`|~``): a constant in code, found by the first test.
    pub fn new(kv: SharedKv, config: SessionConfig) -> Self {
        assert!(
            cookie::valid_name(&config.cookie_name),
            "invalid session cookie name {:?}",
            config.cookie_name
        );
        Self {
            inner: Arc::new(Inner { kv, config }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// Logs `user_id` in with a fresh token. A token the client presented (`replacing`,
    /// from before login) is ended first, so it is never the one that becomes
    /// authenticated. Fails closed: an error means no session exists.
    pub async fn create(
        &self,
        user_id: &str,
        replacing: Option<&str>,
    ) -> Result<NewSession, SessionError> {
        if let Some(old) = replacing {
            self.destroy(old).await?;
        }
        let config = &self.inner.config;
        let kv = &self.inner.kv;
        let token = SessionToken::generate()?;
        let hash = token.hash();
        let now = Utc::now();
        let session = Session {
            user_id: user_id.to_owned(),
            created_at: now,
            last_seen: now,
        };
        // The user's set first and outliving every record in it (a record lingers at most
        // one idle timeout past the lifetime): revoke_all can always find the session.
        kv.set_add(
            &self.user_key(user_id),
            &[&hash],
            config.max_lifetime + config.idle_timeout,
        )
        .await?;
        let created = kv
            .set_if_absent(
                &self.record_key(&hash),
                &encode(&session),
                Some(config.idle_timeout),
            )
            .await?;
        if !created {
            // 2^-256: the generator is broken, not unlucky.
            return Err(SessionError::Randomness(
                "a new token matched a live session".into(),
            ));
        }
        tracing::info!(user_id, "session created");
        Ok(NewSession { token, session })
    }

    /// The session of `token`, if it is live; its idle timeout restarts. Fails closed:
    /// [`SessionError::Store`] when the store cannot tell.
    pub async fn authenticate(&self, token: &str) -> Result<Session, SessionError> {
        let token = SessionToken::parse(token).ok_or(SessionError::Invalid)?;
        let config = &self.inner.config;
        let kv = &self.inner.kv;
        let key = self.record_key(&token.hash());
        let bytes = kv
            .get_and_refresh(&key, config.idle_timeout)
            .await?
            .ok_or(SessionError::Invalid)?;
        let mut session = decode(&bytes)?;
        let now = Utc::now();
        if elapsed_since(session.created_at, now) >= config.max_lifetime {
            if let Err(err) = kv.delete(&key).await {
                // It cannot authenticate anyway; it expires after the idle timeout.
                tracing::warn!(error = %err, "could not delete a session past its lifetime");
            }
            return Err(SessionError::Invalid);
        }
        if elapsed_since(session.last_seen, now) >= config.touch_interval {
            session.last_seen = now;
            // Only if still there: a logout since the read must win.
            if let Err(err) = kv
                .set_if_present(&key, &encode(&session), Some(config.idle_timeout))
                .await
            {
                tracing::warn!(error = %err, "could not record a session's last use");
            }
        }
        Ok(session)
    }

    /// Ends the session of `token` (logout); true when there was one. A malformed token
    /// is simply no session.
    pub async fn destroy(&self, token: &str) -> Result<bool, SessionError> {
        let Some(token) = SessionToken::parse(token) else {
            return Ok(false);
        };
        let kv = &self.inner.kv;
        let hash = token.hash();
        let key = self.record_key(&hash);
        let Some(bytes) = kv.get(&key).await? else {
            return Ok(false);
        };
        let existed = kv.delete(&key).await?;
        // Tidying the user's set is optional: a member without a record costs nothing.
        if let Ok(session) = decode(&bytes)
            && let Err(err) = kv
                .set_remove(&self.user_key(&session.user_id), &[&hash])
                .await
        {
            tracing::warn!(error = %err, "could not remove a session from its user's set");
        }
        Ok(existed)
    }

    /// Ends every session of `user_id` (password change, "log out everywhere"); returns
    /// how many were live. On an error some may remain: calling again finishes the job.
    pub async fn revoke_all(&self, user_id: &str) -> Result<usize, SessionError> {
        let kv = &self.inner.kv;
        let user_key = self.user_key(user_id);
        let hashes = kv.set_members(&user_key).await?;
        // One command per record: records and the set live in different cluster slots.
        let deletions = hashes.iter().map(|hash| async move {
            let key = self.record_key(hash);
            (hash.as_str(), kv.delete(&key).await)
        });
        let mut live = 0;
        let mut ended = Vec::with_capacity(hashes.len());
        let mut failure = None;
        for (hash, result) in futures::future::join_all(deletions).await {
            match result {
                Ok(existed) => {
                    live += usize::from(existed);
                    ended.push(hash);
                }
                Err(err) => failure = Some(err),
            }
        }
        kv.set_remove(&user_key, &ended).await?;
        if let Some(err) = failure {
            return Err(err.into());
        }
        tracing::info!(user_id, sessions = live, "sessions revoked");
        Ok(live)
    }

    /// The `Set-Cookie` value that hands `token` to a browser.
    pub fn set_cookie(&self, token: &SessionToken) -> HeaderValue {
        self.cookie_header(token.as_str(), self.inner.config.max_lifetime)
    }

    /// The `Set-Cookie` value that removes the session cookie (after logout).
    pub fn clear_cookie(&self) -> HeaderValue {
        self.cookie_header("", Duration::ZERO)
    }

    fn cookie_header(&self, value: &str, max_age: Duration) -> HeaderValue {
        let config = &self.inner.config;
        let cookie = cookie::set_cookie(
            &config.cookie_name,
            value,
            max_age,
            config.same_site,
            config.secure_cookie,
        );
        // The name is checked in `new` and the value is hex, so this always holds.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn record_key(&self, hash: &str) -> String {
        format!("{}:{hash}", self.inner.config.prefix)
    }

    fn user_key(&self, user_id: &str) -> String {
        format!("{}:user:{user_id}", self.inner.config.prefix)
    }
}

fn encode(session: &Session) -> Vec<u8> {
    // A struct of strings and timestamps always serializes.
    serde_json::to_vec(session).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<Session, SessionError> {
    serde_json::from_slice(bytes).map_err(|err| {
        tracing::warn!(error = %err, "a session record does not decode; treated as no session");
        SessionError::Invalid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_hex_and_distinct() {
        let a = SessionToken::generate().expect("os rng");
        let b = SessionToken::generate().expect("os rng");
        assert_eq!(a.as_str().len(), 64);
        assert!(SessionToken::parse(a.as_str()).is_some());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "SessionToken(<redacted>)");
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(SessionToken::parse("").is_none());
        assert!(SessionToken::parse(&"A".repeat(64)).is_none(), "uppercase");
        assert!(SessionToken::parse(&"a".repeat(63)).is_none());
        assert!(SessionToken::parse(&"a".repeat(65)).is_none());
        assert!(SessionToken::parse(&format!("{}g", "a".repeat(63))).is_none());
        assert!(SessionToken::parse(&"0".repeat(64)).is_some());
    }

    #[test]
    fn errors_map_to_401_503_and_500() {
        use celeriac_platform::Error;
        let status = |e: SessionError| Error::from(e).status().as_u16();
        assert_eq!(status(SessionError::Invalid), 401);
        assert_eq!(
            status(SessionError::Store(KvError::Unavailable("down".into()))),
            503
        );
        assert_eq!(
            status(SessionError::Store(KvError::Rejected("wrongtype".into()))),
            500
        );
        assert!(!SessionError::Invalid.is_retryable());
    }
}
