//! Tokens handed out once and recognised later: email links and refresh tokens (accounts),
//! channel tokens (calendar webhooks).
//!
//! A token is 256 random bits from the OS generator, in hex. Only its SHA-256 is stored,
//! so a leaked table or key space yields nothing usable. A plain hash is enough (no salt,
//! no stretching) because the input is already uniformly random. A presented token is
//! compared through its digest in constant time, so response timing does not reveal how
//! much of a guess was right.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token as handed to its owner (in a link, a response or a provider's watch request),
/// never stored; `Debug` never shows it.
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
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// The digest of a presented token, surrounding whitespace aside (an unknown one simply
    /// matches nothing).
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.trim().as_bytes()).into())
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
    fn tokens_are_256_random_bits_kept_as_digests() {
        let a = Token::generate();
        let b = Token::generate();
        assert_eq!(a.reveal().len(), 64);
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.digest(), TokenDigest::of(a.reveal()));
        assert_ne!(a.digest().0.to_vec(), a.reveal().as_bytes().to_vec());
        assert!(!format!("{a:?}").contains(a.reveal()));
    }

    #[test]
    fn only_the_token_itself_matches_its_digest() {
        let token = Token::generate();
        let digest = token.digest();
        assert!(digest.matches(token.reveal()));
        assert!(digest.matches(&format!(" {}\n", token.reveal())));
        assert!(!digest.matches(""));
        assert!(!digest.matches(&token.reveal()[1..]));
        assert!(!digest.matches(Token::generate().reveal()));
    }
}
