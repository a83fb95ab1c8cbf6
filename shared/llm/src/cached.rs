//! Model answers cached by content hash: the same input to the same model never costs a
//! second call.
//!
//! The key is the SHA-256 of the operation, the adapter, the model and the input, so a
//! model change or another operation on the same text misses. Failures are never
//! cached. Chat replies pass through uncached: a reply is one turn of a live conversation,
//! and its topic hint changes from turn to turn, so a hit would be rare and stale.

use std::time::Duration;

use async_trait::async_trait;
use celeriac_cache::{Cache, CacheKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::port::{
    ChatReply, ChatRequest, Content, ContentRequest, ConversationAnalysis, Llm, LlmError,
    SharedLlm, Topic,
};

/// Cache family of every model answer (`llm:{operation}:{hash}`).
pub const FAMILY: &str = "llm";

/// How long an answer is kept unless configured otherwise: a day, as the content keys.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// An [`Llm`] that answers from the cache when it can.
#[derive(Debug, Clone)]
pub struct CachedLlm {
    inner: SharedLlm,
    cache: Cache,
    ttl: Duration,
}

impl CachedLlm {
    /// `inner`'s answers kept in `cache` for `ttl`. Give the cache a refresh lock longer
    /// than a model call, so concurrent callers with the same input wait for one call.
    pub fn new(inner: SharedLlm, cache: Cache, ttl: Duration) -> Self {
        Self { inner, cache, ttl }
    }

    /// The key of `operation` on `input` for this model; `None` when `input` does not
    /// serialise (then the call is made uncached).
    pub fn key(&self, operation: &str, input: &impl Serialize) -> Option<CacheKey> {
        let input = serde_json::to_vec(input).ok()?;
        let mut hash = Sha256::new();
        for part in [operation, self.inner.adapter(), self.inner.model()] {
            hash.update(part.as_bytes());
            // A separator no part contains, so ("ab", "c") and ("a", "bc") differ.
            hash.update([0u8]);
        }
        hash.update(input);
        Some(CacheKey::new(
            FAMILY,
            format!("{operation}:{}", hex::encode(hash.finalize())),
        ))
    }

    async fn cached<I, T, F, Fut>(&self, operation: &str, input: &I, call: F) -> Result<T, LlmError>
    where
        I: Serialize,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        match self.key(operation, input) {
            Some(key) => self.cache.get_or_compute(&key, self.ttl, call).await,
            None => call().await,
        }
    }
}

#[async_trait]
impl Llm for CachedLlm {
    fn adapter(&self) -> &'static str {
        self.inner.adapter()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn chat_reply(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        self.inner.chat_reply(request).await
    }

    async fn extract_topic(&self, message: &str) -> Result<Topic, LlmError> {
        self.cached("topic", &message, || self.inner.extract_topic(message))
            .await
    }

    async fn generate_content(&self, request: &ContentRequest) -> Result<Content, LlmError> {
        self.cached("content", request, || self.inner.generate_content(request))
            .await
    }

    async fn analyse_conversation(&self, content: &str) -> Result<ConversationAnalysis, LlmError> {
        self.cached("analysis", &content, || {
            self.inner.analyse_conversation(content)
        })
        .await
    }
}
