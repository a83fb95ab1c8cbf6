//! The accounts port: users, one-time email tokens and refresh-token families, with the
//! in-memory adapter (the embedded default). The PostgreSQL adapter is in
//! [`super::postgres`]; both pass `tests/accounts_store.rs`.
//!
//! An unconfirmed user is *pending* until its registration link expires. A pending user
//! does not own its address: registering the address again replaces it (new password, new
//! link, its old links dead), and once expired it is as if it had never registered (it
//! cannot log in, its link does not confirm). So nobody can squat someone else's address,
//! nor choose the password of an account its owner later confirms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::secrets::TokenDigest;

/// A shop user as the API sees it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Email, lower-cased.
    pub email: String,
    /// Display name.
    pub name: String,
    /// When the email was confirmed; unconfirmed users cannot log in.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Registered.
    pub created_at: DateTime<Utc>,
}

/// A registration, validated and with its password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email, lower-cased.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the user, unless confirmed by then, stops being pending: the expiry of its
    /// registration link.
    pub pending_until: DateTime<Utc>,
}

/// What a one-time email token confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// The address given at registration.
    Registration,
    /// A new address for the account.
    EmailChange {
        /// The address that takes effect on confirmation.
        new_email: String,
    },
    /// A new password for the account (redeemed by [`AccountStore::reset_password`]).
    PasswordReset,
}

impl TokenKind {
    /// The kind's name as stored; tokens of one kind replace each other.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::EmailChange { .. } => "email_change",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// It was current: it is now used, and its successor (same family) was stored.
    Rotated {
        /// Whose it is.
        user_id: Uuid,
    },
    /// It had been used before: someone replayed it, so its whole family is now revoked.
    Reused {
        /// Whose it was.
        user_id: Uuid,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Why an account operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccountError {
    /// A confirmed account has this email.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The database cannot be reached; retrying later can help.
    #[error("accounts store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request (a bug or a schema mismatch); retrying will not help.
    #[error("accounts store error: {0}")]
    Rejected(String),
}

impl AccountError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<AccountError> for celeriac_platform::Error {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::EmailTaken => Self::Conflict(err.to_string()),
            AccountError::Unavailable(reason) => Self::Unavailable {
                component: "database",
                reason,
            },
            AccountError::Rejected(reason) => Self::internal(reason),
        }
    }
}

/// Where accounts live.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Creates a pending (unconfirmed) user. A pending user with the same email, expired or
    /// not, is replaced, its tokens dying with it; [`AccountError::EmailTaken`] if a
    /// confirmed user has the email.
    async fn create_user(&self, user: NewUser) -> Result<User, AccountError>;

    /// Removes a user who never confirmed (a registration whose email could not be
    /// sent); true when one was removed. A confirmed user is never removed here.
    async fn delete_unconfirmed_user(&self, id: Uuid) -> Result<bool, AccountError>;

    /// The user with `email` (lower-cased) and their password hash: a confirmed user, or a
    /// pending one whose link has not expired (an expired one is as if absent).
    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, AccountError>;

    /// The user with `id`.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AccountError>;

    /// Stores a one-time email token for `user_id`, valid until `expires_at`. The user's
    /// unused tokens of the same kind die (one live link per purpose). A registration
    /// token also keeps a pending user pending until `expires_at`; it is stored only for a
    /// user still pending (false otherwise, and nothing changes).
    async fn put_email_token(
        &self,
        digest: &TokenDigest,
        user_id: Uuid,
        kind: TokenKind,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AccountError>;

    /// Uses a registration or email change token, applying what it confirms (the account
    /// confirmed, or the email changed) in the same step; `None` when it is unknown, used,
    /// expired or a password reset token. An email change takes the address from a
    /// pending user holding it; to an address a confirmed user took meanwhile it is
    /// [`AccountError::EmailTaken`], and leaves the token unused.
    async fn redeem_email_token(&self, digest: &TokenDigest) -> Result<Option<User>, AccountError>;

    /// Uses a password reset token: sets `password_hash` and revokes every refresh token
    /// of the user, in one step; `None` when the token is unknown, used, expired or of
    /// another kind. Ending the user's sessions is the caller's (they are not here).
    async fn reset_password(
        &self,
        digest: &TokenDigest,
        password_hash: String,
    ) -> Result<Option<User>, AccountError>;

    /// Stores a refresh token of `family` for `user_id`.
    async fn put_refresh_token(
        &self,
        digest: &TokenDigest,
        family: Uuid,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError>;

    /// Presents a refresh token: when current, marks it used and stores `successor` in the
    /// same family (valid until `expires_at`), atomically, so of two concurrent uses one
    /// rotates and the other is a reuse.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        successor: &TokenDigest,
        expires_at: DateTime<Utc>,
    ) -> Result<Refresh, AccountError>;

    /// Revokes the family of a refresh token (logout); true when it was found.
    async fn revoke_refresh_family(&self, presented: &TokenDigest) -> Result<bool, AccountError>;
}

/// The store as handlers hold it.
pub type SharedAccounts = Arc<dyn AccountStore>;

#[derive(Debug, Clone)]
struct StoredUser {
    user: User,
    password_hash: String,
    pending_until: DateTime<Utc>,
}

impl StoredUser {
    /// Confirmed, or pending with its link still valid.
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.user.confirmed_at.is_some() || self.pending_until > now
    }
}

#[derive(Debug, Clone)]
struct EmailToken {
    user_id: Uuid,
    kind: TokenKind,
    expires_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug, Clone)]
struct RefreshToken {
    family: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    used: bool,
    revoked: bool,
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<Uuid, StoredUser>,
    email_tokens: HashMap<TokenDigest, EmailToken>,
    refresh_tokens: HashMap<TokenDigest, RefreshToken>,
}

impl Tables {
    fn confirmed_holder(&self, email: &str, except: Option<Uuid>) -> bool {
        self.users.values().any(|u| {
            u.user.email == email && u.user.confirmed_at.is_some() && Some(u.user.id) != except
        })
    }

    /// Removes the unconfirmed users holding `email`, and their tokens.
    fn remove_pending(&mut self, email: &str) {
        let pending: Vec<Uuid> = self
            .users
            .values()
            .filter(|u| u.user.email == email && u.user.confirmed_at.is_none())
            .map(|u| u.user.id)
            .collect();
        for id in pending {
            self.remove_user(id);
        }
    }

    fn remove_user(&mut self, id: Uuid) {
        self.users.remove(&id);
        self.email_tokens.retain(|_, t| t.user_id != id);
        self.refresh_tokens.retain(|_, t| t.user_id != id);
    }

    /// The unused, unexpired token `digest`, when `accept` takes its kind.
    fn live_token(
        &self,
        digest: &TokenDigest,
        now: DateTime<Utc>,
        accept: impl Fn(&TokenKind) -> bool,
    ) -> Option<EmailToken> {
        self.email_tokens
            .get(digest)
            .filter(|t| !t.used && t.expires_at > now && accept(&t.kind))
            .cloned()
    }
}

/// Accounts in process memory, lost on restart: the embedded default of `celeriac dev`.
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    tables: Mutex<Tables>,
}

impl MemoryAccounts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Every operation checks before it writes, so a panic cannot leave half an update.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl AccountStore for MemoryAccounts {
    async fn create_user(&self, new: NewUser) -> Result<User, AccountError> {
        let mut tables = self.lock();
        if tables.confirmed_holder(&new.email, None) {
            return Err(AccountError::EmailTaken);
        }
        tables.remove_pending(&new.email);
        let user = User {
            id: Uuid::new_v4(),
            email: new.email,
            name: new.name,
            confirmed_at: None,
            created_at: Utc::now(),
        };
        tables.users.insert(
            user.id,
            StoredUser {
                user: user.clone(),
                password_hash: new.password_hash,
                pending_until: new.pending_until,
            },
        );
        Ok(user)
    }

    async fn delete_unconfirmed_user(&self, id: Uuid) -> Result<bool, AccountError> {
        let mut tables = self.lock();
        if tables
            .users
            .get(&id)
            .is_none_or(|u| u.user.confirmed_at.is_some())
        {
            return Ok(false);
        }
        tables.remove_user(id);
        Ok(true)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, AccountError> {
        let now = Utc::now();
        Ok(self
            .lock()
            .users
            .values()
            .find(|u| u.user.email == email && u.is_live(now))
            .map(|u| (u.user.clone(), u.password_hash.clone())))
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        Ok(self.lock().users.get(&id).map(|u| u.user.clone()))
    }

    async fn put_email_token(
        &self,
        digest: &TokenDigest,
        user_id: Uuid,
        kind: TokenKind,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, AccountError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let Some(stored) = tables.users.get_mut(&user_id) else {
            return Ok(false);
        };
        if kind == TokenKind::Registration {
            if stored.user.confirmed_at.is_some() || stored.pending_until <= now {
                return Ok(false);
            }
            stored.pending_until = expires_at;
        }
        tables
            .email_tokens
            .retain(|_, t| t.user_id != user_id || t.used || t.kind.name() != kind.name());
        tables.email_tokens.insert(
            digest.clone(),
            EmailToken {
                user_id,
                kind,
                expires_at,
                used: false,
            },
        );
        Ok(true)
    }

    async fn redeem_email_token(&self, digest: &TokenDigest) -> Result<Option<User>, AccountError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let Some(token) = tables.live_token(digest, now, |kind| {
            !matches!(kind, TokenKind::PasswordReset)
        }) else {
            return Ok(None);
        };
        if !tables
            .users
            .get(&token.user_id)
            .is_some_and(|u| u.is_live(now))
        {
            return Ok(None);
        }
        if let TokenKind::EmailChange { new_email } = &token.kind {
            if tables.confirmed_holder(new_email, Some(token.user_id)) {
                return Err(AccountError::EmailTaken);
            }
            tables.remove_pending(new_email);
        }
        let Some(stored) = tables.users.get_mut(&token.user_id) else {
            return Ok(None);
        };
        match token.kind {
            TokenKind::Registration => {
                stored.user.confirmed_at.get_or_insert(now);
            }
            TokenKind::EmailChange { new_email } => stored.user.email = new_email,
            TokenKind::PasswordReset => return Ok(None),
        }
        let user = stored.user.clone();
        if let Some(t) = tables.email_tokens.get_mut(digest) {
            t.used = true;
        }
        Ok(Some(user))
    }

    async fn reset_password(
        &self,
        digest: &TokenDigest,
        password_hash: String,
    ) -> Result<Option<User>, AccountError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let Some(token) =
            tables.live_token(digest, now, |kind| matches!(kind, TokenKind::PasswordReset))
        else {
            return Ok(None);
        };
        let Some(stored) = tables.users.get_mut(&token.user_id) else {
            return Ok(None);
        };
        stored.password_hash = password_hash;
        let user = stored.user.clone();
        for t in tables.refresh_tokens.values_mut() {
            if t.user_id == user.id {
                t.revoked = true;
            }
        }
        if let Some(t) = tables.email_tokens.get_mut(digest) {
            t.used = true;
        }
        Ok(Some(user))
    }

    async fn put_refresh_token(
        &self,
        digest: &TokenDigest,
        family: Uuid,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        self.lock().refresh_tokens.insert(
            digest.clone(),
            RefreshToken {
                family,
                user_id,
                expires_at,
                used: false,
                revoked: false,
            },
        );
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        successor: &TokenDigest,
        expires_at: DateTime<Utc>,
    ) -> Result<Refresh, AccountError> {
        let now = Utc::now();
        let mut tables = self.lock();
        let Some(token) = tables.refresh_tokens.get(presented).cloned() else {
            return Ok(Refresh::Invalid);
        };
        if token.revoked || token.expires_at <= now {
            return Ok(Refresh::Invalid);
        }
        if token.used {
            for t in tables.refresh_tokens.values_mut() {
                if t.family == token.family {
                    t.revoked = true;
                }
            }
            return Ok(Refresh::Reused {
                user_id: token.user_id,
            });
        }
        if let Some(t) = tables.refresh_tokens.get_mut(presented) {
            t.used = true;
        }
        tables.refresh_tokens.insert(
            successor.clone(),
            RefreshToken {
                family: token.family,
                user_id: token.user_id,
                expires_at,
                used: false,
                revoked: false,
            },
        );
        Ok(Refresh::Rotated {
            user_id: token.user_id,
        })
    }

    async fn revoke_refresh_family(&self, presented: &TokenDigest) -> Result<bool, AccountError> {
        let mut tables = self.lock();
        let Some(family) = tables.refresh_tokens.get(presented).map(|t| t.family) else {
            return Ok(false);
        };
        for t in tables.refresh_tokens.values_mut() {
            if t.family == family {
                t.revoked = true;
            }
        }
        Ok(true)
    }
}
