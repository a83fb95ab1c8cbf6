//! `CachedLlm`: the same input never costs a second model call, over the memory store
//! and over Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use celeriac_cache::{Cache, CacheConfig};
use celeriac_kv::{MemoryKv, RedisKv, SharedKv};
use celeriac_llm::cached::DEFAULT_TTL;
use celeriac_llm::{
    CachedLlm, ChatReply, ChatRequest, Content, ContentKind, ContentRequest, ConversationAnalysis,
    Language, Llm, LlmError, LocalEngine, Topic,
};

/// The local engine, counting the calls that reach it.
#[derive(Debug, Default)]
struct Counted {
    engine: LocalEngine,
    calls: AtomicUsize,
}

impl Counted {
    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Llm for Counted {
    fn adapter(&self) -> &'static str {
        self.engine.adapter()
    }
    fn model(&self) -> &str {
        self.engine.model()
    }
    async fn chat_reply(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        self.tick();
        self.engine.chat_reply(request).await
    }
    async fn extract_topic(&self, message: &str) -> Result<Topic, LlmError> {
        self.tick();
        self.engine.extract_topic(message).await
    }
    async fn generate_content(&self, request: &ContentRequest) -> Result<Content, LlmError> {
        self.tick();
        self.engine.generate_content(request).await
    }
    async fn analyse_conversation(&self, text: &str) -> Result<ConversationAnalysis, LlmError> {
        self.tick();
        self.engine.analyse_conversation(text).await
    }
}

async fn same_input_costs_one_call(kv: SharedKv) {
    let inner = Arc::new(Counted::default());
    let prefix = celeriac_testkit::unique_prefix("llm-cache");
    let cache = Cache::new(
        kv,
        CacheConfig {
            prefix,
            ..CacheConfig::default()
        },
    );
    let llm = CachedLlm::new(inner.clone(), cache, DEFAULT_TTL);
    let text = "Anna: We need to submit the report by Friday.\nBen: I'll draft it today.";

    let first = llm.analyse_conversation(text).await.expect("analysis");
    let second = llm.analyse_conversation(text).await.expect("analysis");
    assert_eq!(first, second);
    assert_eq!(inner.count(), 1, "the second analysis came from the cache");

    llm.analyse_conversation("Ben: Please book the room.")
        .await
        .expect("analysis");
    assert_eq!(inner.count(), 2, "other content costs a call");

    let topic = llm.extract_topic(text).await.expect("topic");
    assert_eq!(
        inner.count(),
        3,
        "another operation on the same text is its own entry"
    );
    assert_eq!(llm.extract_topic(text).await.expect("topic"), topic);
    assert_eq!(inner.count(), 3);

    let request = ContentRequest {
        kind: ContentKind::Quote,
        topic: "sleep".into(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
        language: Language::En,
    };
    llm.generate_content(&request).await.expect("quote");
    llm.generate_content(&request).await.expect("quote");
    assert_eq!(inner.count(), 4);

    let chat = ChatRequest {
        message: "hello".into(),
        topic: None,
    };
    llm.chat_reply(&chat).await.expect("reply");
    llm.chat_reply(&chat).await.expect("reply");
    assert_eq!(inner.count(), 6, "chat replies are not cached");

    assert!(matches!(
        llm.analyse_conversation("   ").await,
        Err(LlmError::Unusable(_))
    ));
    assert!(matches!(
        llm.analyse_conversation("   ").await,
        Err(LlmError::Unusable(_))
    ));
    assert_eq!(inner.count(), 8, "failures are not cached");
}

#[tokio::test]
async fn same_input_costs_one_call_in_memory() {
    same_input_costs_one_call(Arc::new(MemoryKv::new())).await;
}

#[tokio::test]
async fn same_input_costs_one_call_on_redis() {
    let Some(config) = celeriac_testkit::redis_single() else {
        return;
    };
    let kv = RedisKv::open(&config).await.expect("redis");
    same_input_costs_one_call(Arc::new(kv)).await;
}
