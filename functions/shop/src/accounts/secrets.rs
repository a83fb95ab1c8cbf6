//! Passwords and tokens.
//!
//! Passwords are hashed with Argon2id (PHC string, its parameters inside, so they can be
//! raised later without breaking old hashes). Hashing takes tens of milliseconds of CPU on
//! purpose, so it runs on the blocking pool, away from the request tasks.
//!
//! Tokens (email confirmation, refresh) are the platform's ([`celeriac_platform::token`]):
//! handed out once, only their SHA-256 stored.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};

pub use celeriac_platform::token::{Token, TokenDigest};

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// Hashes `password` with a fresh salt (on the blocking pool).
pub async fn hash_password(password: SecretString) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError(e.to_string()))?;
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordError(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError(e.to_string()))?
}

/// Whether `password` matches the stored PHC `hash` (on the blocking pool). A hash that
/// cannot be parsed matches nothing.
pub async fn verify_password(password: SecretString, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so that a login for an
/// unknown email costs the same time as one for a known email (no account enumeration by
/// timing).
pub async fn decoy_hash() -> &'static str {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async {
            hash_password(SecretString::from(Token::generate().reveal().to_owned()))
                .await
                .unwrap_or_default()
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password(SecretString::from("correct horse"))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(SecretString::from("correct horse"), hash.clone()).await);
        assert!(!verify_password(SecretString::from("wrong horse"), hash).await);
        assert!(!verify_password(SecretString::from("x"), "not a hash".into()).await);
    }
}
