//! Passwords and tokens.
//!
//! Passwords are hashed with Argon2id (PHC string, its parameters inside, so they can be
//! raised later without breaking old hashes). Hashing takes tens of milliseconds of CPU on
//! purpose, so it runs on the blocking pool, away from the request tasks.
//!
//! Tokens (email confirmation, refresh) are 256 random bits from the OS generator, handed
//! out once in hex; only their SHA-256 is stored, so a leaked table or key space does not
//! yield usable tokens. A plain hash suffices (no salt, no stretching) because the input
//! is already uniformly random and unguessable.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A token as handed to its owner (in a link or a response), never stored.
#[derive(Clone)]
pub struct Token(SecretString);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(SecretString::from(hex::encode(bytes)))
    }

    /// The token text, for the one place it is handed out.
    pub fn reveal(&self) -> &str {
        self.0.expose_secret()
    }

    /// What is stored in its place.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.reveal())
    }
}

/// The SHA-256 of a token: what stores keep and look up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The digest of a presented token (whatever its shape: an unknown one simply matches
    /// nothing).
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.trim().as_bytes()).into())
    }
}

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

    #[test]
    fn tokens_are_256_random_bits_and_stored_as_digests() {
        let a = Token::generate();
        let b = Token::generate();
        assert_eq!(a.reveal().len(), 64);
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.digest(), TokenDigest::of(a.reveal()));
        assert_ne!(a.digest().0.to_vec(), a.reveal().as_bytes().to_vec());
        assert!(!format!("{a:?}").contains(a.reveal()));
    }
}
