//! The key ring that seals each user's Google refresh token at rest (AES-256-GCM).
//!
//! The operator provides the keys, newest first, as JSON in a Secrets Manager secret
//! (`CALENDAR_TOKEN_KEYS_SECRET_ARN`; under `celeriac dev` and in tests also inline in
//! `CALENDAR_TOKEN_KEYS`):
//!
//! ```json
//! {"keys": [{"id": "2026-12", "key": "<64 hex digits>"}, {"id": "2026-06", "key": "..."}]}
//! ```
//!
//! The first key seals; every listed key opens, found by the key id stored beside each
//! ciphertext. Rotation without downtime: put a new key first and keep the old ones
//! listed; tokens sealed under an old key still open, and are sealed again under the
//! newest when next used ([`crate::credentials`]). Once no stored token names an old key,
//! drop it from the secret.
//!
//! A sealed token is `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with a fresh
//! random nonce per sealing. The associated data names the user, so a ciphertext copied
//! onto another user's row does not open. Keys never reach `Debug` or logs.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Bytes of a GCM nonce.
const NONCE_LEN: usize = 12;

/// Why the key ring could not be read, or a token not sealed or opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyRingError {
    /// The key ring setting or secret is malformed, or names no key: retrying will not
    /// help until the operator fixes it.
    #[error("calendar token keys: {0}")]
    Config(String),
    /// Secrets Manager could not be read; a later attempt can succeed.
    #[error("calendar token keys unavailable: {0}")]
    Unavailable(String),
    /// The ciphertext names a key that is no longer in the ring.
    #[error("the stored token is sealed under key {0:?}, which the key ring no longer lists")]
    UnknownKey(String),
    /// The ciphertext does not open under its key (tampered, or another user's).
    #[error("the stored token does not open under its key")]
    Corrupt,
}

impl KeyRingError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A token sealed under one key of the ring.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Which key sealed it.
    pub key_id: String,
    /// `nonce || ciphertext || tag`.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys, newest first.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRingDocument {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    key: String,
}

fn associated_data(user_id: &str) -> Vec<u8> {
    format!("celeriac calendar refresh token\n{user_id}").into_bytes()
}

impl KeyRing {
    /// Parses the key ring document (see the module docs). Errors never quote key material.
    pub fn from_json(document: &SecretString) -> Result<Self, KeyRingError> {
        let parsed: KeyRingDocument =
            serde_json::from_str(document.expose_secret()).map_err(|e| {
                KeyRingError::Config(format!(
                    "expected {{\"keys\": [{{\"id\": ..., \"key\": <64 hex digits>}}, ...]}} ({})",
                    celeriac_platform::json::without_values(&e)
                ))
            })?;
        let mut keys = Vec::with_capacity(parsed.keys.len());
        for entry in parsed.keys {
            let id = entry.id.trim().to_owned();
            let valid_id = (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid_id {
                return Err(KeyRingError::Config(
                    "a key id is 1 to 64 letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if keys.iter().any(|k: &Key| k.id == id) {
                return Err(KeyRingError::Config(format!(
                    "key id {id:?} is listed twice"
                )));
            }
            let bytes = hex::decode(entry.key.trim())
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    KeyRingError::Config(format!(
                        "key {id:?} must be 64 hex digits (256 bits, e.g. `openssl rand -hex 32`)"
                    ))
                })?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| KeyRingError::Config(format!("key {id:?} is not 256 bits")))?;
            keys.push(Key { id, cipher });
        }
        if keys.is_empty() {
            return Err(KeyRingError::Config("the key ring lists no key".into()));
        }
        Ok(Self { keys })
    }

    /// Reads the key ring from the Secrets Manager secret `arn` (its `SecretString`).
    pub async fn from_secret(sdk: &aws_config::SdkConfig, arn: &str) -> Result<Self, KeyRingError> {
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let value = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                KeyRingError::Unavailable(format!(
                    "reading the key ring secret: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ))
            })?;
        let text = value.secret_string().ok_or_else(|| {
            KeyRingError::Config("the key ring secret has no SecretString".into())
        })?;
        Self::from_json(&SecretString::from(text.to_owned()))
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Seals `token` for `user_id` under the newest key.
    pub fn seal(&self, user_id: &str, token: &SecretString) -> Result<Sealed, KeyRingError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| KeyRingError::Config("the key ring lists no key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let aad = associated_data(user_id);
        let ciphertext = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| KeyRingError::Corrupt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key.id.clone(),
            bytes,
        })
    }

    /// Opens a token sealed for `user_id` under any key of the ring.
    pub fn open(&self, user_id: &str, sealed: &Sealed) -> Result<SecretString, KeyRingError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| KeyRingError::UnknownKey(sealed.key_id.clone()))?;
        let (nonce, ciphertext) = sealed
            .bytes
            .split_at_checked(NONCE_LEN)
            .ok_or(KeyRingError::Corrupt)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyRingError::Corrupt)?;
        let aad = associated_data(user_id);
        let plain = key
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyRingError::Corrupt)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| KeyRingError::Corrupt)
    }
}

/// Where the key ring comes from.
#[derive(Clone)]
pub enum KeyRingSource {
    /// The document itself (`CALENDAR_TOKEN_KEYS`: `celeriac dev` and tests).
    Inline(SecretString),
    /// A Secrets Manager secret holding the document (`CALENDAR_TOKEN_KEYS_SECRET_ARN`).
    SecretArn(String),
}

impl std::fmt::Debug for KeyRingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::SecretArn(arn) => f.debug_tuple("SecretArn").field(arn).finish(),
        }
    }
}

/// The key ring, read from its source on first use and kept for the life of the
/// process (a failed read is tried again on the next use). Functions that never touch a
/// token never read the secret.
#[derive(Debug)]
pub struct LazyKeyRing {
    source: Option<KeyRingSource>,
    ring: tokio::sync::OnceCell<KeyRing>,
}

impl LazyKeyRing {
    /// The ring from `source`; `None` makes every use fail with a message naming the
    /// settings.
    pub fn new(source: Option<KeyRingSource>) -> Self {
        Self {
            source,
            ring: tokio::sync::OnceCell::new(),
        }
    }

    /// A ring already read (tests).
    pub fn ready(ring: KeyRing) -> Self {
        Self {
            source: None,
            ring: tokio::sync::OnceCell::new_with(Some(ring)),
        }
    }

    /// The ring, read now if this is the first use.
    pub async fn get(&self) -> Result<&KeyRing, KeyRingError> {
        self.ring
            .get_or_try_init(|| async {
                match &self.source {
                    Some(KeyRingSource::Inline(document)) => KeyRing::from_json(document),
                    Some(KeyRingSource::SecretArn(arn)) => {
                        let sdk = celeriac_platform::aws::load()
                            .await
                            .map_err(|e| KeyRingError::Config(e.to_string()))?;
                        KeyRing::from_secret(&sdk, arn).await
                    }
                    None => Err(KeyRingError::Config(
                        "set CALENDAR_TOKEN_KEYS_SECRET_ARN (or CALENDAR_TOKEN_KEYS) to store Google tokens".into(),
                    )),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn ring(keys: &[(&str, &str)]) -> KeyRing {
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|(id, key)| serde_json::json!({"id": id, "key": key}))
            .collect();
        KeyRing::from_json(&SecretString::from(
            serde_json::json!({ "keys": keys }).to_string(),
        ))
        .expect("key ring")
    }

    #[test]
    fn a_sealed_token_opens_for_its_user_only_and_hides_the_token() {
        let ring = ring(&[("k1", OLD)]);
        let token = SecretString::from("1//refresh-token-of-mei");
        let sealed = ring.seal("mei", &token).expect("sealed");
        assert_eq!(sealed.key_id, "k1");
        assert!(
            !sealed
                .bytes
                .windows(b"refresh-token".len())
                .any(|w| w == b"refresh-token")
        );
        assert_eq!(
            ring.open("mei", &sealed).expect("opens").expose_secret(),
            "1//refresh-token-of-mei"
        );
        assert!(matches!(
            ring.open("kai", &sealed),
            Err(KeyRingError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.bytes.last_mut() {
            *last ^= 1;
        }
        assert!(matches!(
            ring.open("mei", &tampered),
            Err(KeyRingError::Corrupt)
        ));
        // Two sealings of the same token differ (fresh nonce each time).
        assert_ne!(
            ring.seal("mei", &token).expect("sealed").bytes,
            sealed.bytes
        );
    }

    #[test]
    fn after_rotation_old_tokens_open_and_new_ones_use_the_new_key() {
        let before = ring(&[("2026-06", OLD)]);
        let sealed_before = before
            .seal("mei", &SecretString::from("old-refresh"))
            .expect("sealed");
        let rotated = ring(&[("2026-12", NEW), ("2026-06", OLD)]);
        assert_eq!(rotated.current_key_id(), "2026-12");
        assert_eq!(
            rotated
                .open("mei", &sealed_before)
                .expect("old key still opens")
                .expose_secret(),
            "old-refresh"
        );
        let sealed_after = rotated
            .seal("mei", &SecretString::from("new-refresh"))
            .expect("sealed");
        assert_eq!(sealed_after.key_id, "2026-12");
        // Once the old key is dropped, its tokens name a key the ring lacks.
        let pruned = ring(&[("2026-12", NEW)]);
        assert!(matches!(
            pruned.open("mei", &sealed_before),
            Err(KeyRingError::UnknownKey(id)) if id == "2026-06"
        ));
    }

    #[test]
    fn malformed_rings_are_refused_without_quoting_keys() {
        for document in [
            r#"{"keys": []}"#,
            r#"{"keys": [{"id": "k1", "key": "abcd"}]}"#,
            r#"{"keys": [{"id": "k 1", "key": "1111111111111111111111111111111111111111111111111111111111111111"}]}"#,
            r#"not json with a secret-ish-value"#,
        ] {
            let err = KeyRing::from_json(&SecretString::from(document)).expect_err("refused");
            assert!(matches!(err, KeyRingError::Config(_)));
            assert!(!err.to_string().contains("secret-ish"));
        }
        let twice = format!(
            r#"{{"keys": [{{"id": "k", "key": "{OLD}"}}, {{"id": "k", "key": "{NEW}"}}]}}"#
        );
        assert!(KeyRing::from_json(&SecretString::from(twice)).is_err());
        let printed = format!("{:?}", ring(&[("k1", OLD)]));
        assert!(printed.contains("k1") && !printed.contains(OLD));
    }
}
