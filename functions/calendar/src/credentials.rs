//! Each user's Google refresh token, sealed in the calendar store under the key ring.
//!
//! Saving seals under the newest key; reading opens under whichever key sealed it, and
//! when that is not the newest key, seals the token again under the newest one (only if
//! the stored ciphertext is still the one read, so a token the user connected meanwhile
//! is never overwritten). Tokens never reach `Debug` or logs.

use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;

use crate::keyring::{KeyRingError, LazyKeyRing};
use crate::provider::ProviderError;
use crate::store::{SharedCalendarStore, StoreError, StoredCredential};

/// Why a credential could not be saved or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key ring is missing, unreadable, or does not open the token.
    #[error(transparent)]
    Keys(#[from] KeyRingError),
}

impl From<CredentialError> for ProviderError {
    fn from(err: CredentialError) -> Self {
        let retryable = match &err {
            CredentialError::Store(e) => e.is_retryable(),
            CredentialError::Keys(e) => e.is_retryable(),
        };
        if retryable {
            Self::Unavailable(err.to_string())
        } else {
            Self::Rejected(err.to_string())
        }
    }
}

impl From<CredentialError> for celeriac_platform::Error {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::Store(e) => e.into(),
            CredentialError::Keys(e) if e.is_retryable() => Self::Unavailable {
                component: "calendar token keys",
                reason: e.to_string(),
            },
            CredentialError::Keys(e) => Self::internal(e.to_string()),
        }
    }
}

/// The users' sealed refresh tokens.
#[derive(Debug, Clone)]
pub struct CredentialVault {
    store: SharedCalendarStore,
    keys: Arc<LazyKeyRing>,
}

impl CredentialVault {
    /// Tokens in `store`, sealed under `keys`.
    pub fn new(store: SharedCalendarStore, keys: Arc<LazyKeyRing>) -> Self {
        Self { store, keys }
    }

    /// Seals and stores `refresh_token` as the user's, replacing any earlier one.
    pub async fn save(
        &self,
        user_id: &str,
        refresh_token: &SecretString,
        scope: &str,
    ) -> Result<(), CredentialError> {
        let sealed = self.keys.get().await?.seal(user_id, refresh_token)?;
        let now = Utc::now();
        self.store
            .put_credential(&StoredCredential {
                user_id: user_id.to_owned(),
                sealed,
                scope: scope.to_owned(),
                connected_at: now,
                sealed_at: now,
            })
            .await?;
        tracing::info!(user_id, "Google Calendar connected");
        Ok(())
    }

    /// The user's refresh token; `None` when the user has not connected.
    pub async fn refresh_token(
        &self,
        user_id: &str,
    ) -> Result<Option<SecretString>, CredentialError> {
        let Some(stored) = self.store.credential(user_id).await? else {
            return Ok(None);
        };
        let ring = self.keys.get().await?;
        let token = ring.open(user_id, &stored.sealed)?;
        if stored.sealed.key_id != ring.current_key_id() {
            // Rotation: move the token to the newest key while we hold it in clear. A
            // failure here costs nothing; the next use tries again.
            let moved = match ring.seal(user_id, &token) {
                Ok(resealed) => self
                    .store
                    .reseal_credential(user_id, &stored.sealed, &resealed)
                    .await
                    .map_err(CredentialError::from),
                Err(e) => Err(e.into()),
            };
            match moved {
                Ok(done) => {
                    tracing::info!(user_id, from = %stored.sealed.key_id, to = ring.current_key_id(), resealed = done, "refresh token moved to the newest key");
                }
                Err(err) => {
                    tracing::warn!(user_id, error = %err, "refresh token not moved to the newest key");
                }
            }
        }
        Ok(Some(token))
    }

    /// The stored credential as it is (sealed), for status and tests.
    pub async fn stored(&self, user_id: &str) -> Result<Option<StoredCredential>, CredentialError> {
        Ok(self.store.credential(user_id).await?)
    }
}
