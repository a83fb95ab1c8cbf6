//! Channel tokens: the secret we hand the provider when a channel is created, and that it
//! echoes in `X-Goog-Channel-Token` on every notification, proving the notification comes
//! from the channel's creator and not from someone who guessed the webhook URL.
//!
//! A token is 256 random bits, in hex. Only its SHA-256 is stored, so a leaked table does
//! not let anyone forge notifications; a presented token is hashed and compared in
//! constant time, so response timing does not reveal how much of it was right.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated channel token; `Debug` never shows it.
#[derive(Clone)]
pub struct ChannelToken(SecretString);

impl std::fmt::Debug for ChannelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelToken([redacted])")
    }
}

impl ChannelToken {
    /// 256 bits from the OS generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self(SecretString::from(hex::encode(bytes)))
    }

    /// The token, for the provider's watch request (and nothing else).
    pub fn reveal(&self) -> &str {
        self.0.expose_secret()
    }

    /// Its digest, as stored.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.reveal())
    }
}

/// SHA-256 of a channel token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// The digest of a presented token.
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    /// Whether `presented` is the token this is the digest of, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        Self::of(presented).0.ct_eq(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches_its_digest() {
        let token = ChannelToken::generate();
        let digest = token.digest();
        assert!(digest.matches(token.reveal()));
        assert!(!digest.matches(""));
        assert!(!digest.matches(&token.reveal()[1..]));
        assert!(!digest.matches(ChannelToken::generate().reveal()));
        assert!(!format!("{token:?}").contains(token.reveal()));
    }
}
