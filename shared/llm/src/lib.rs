//! The LLM port and its adapters.
//!
//! - [`port`]: the operations the apps need (chat reply, topic, content, conversation
//!   analysis) as typed values, and [`LlmError`], which says whether a retry can help.
//! - [`cached`]: answers cached by content hash, over any adapter.
//! - [`bedrock`]: Amazon Bedrock through the Converse API, and its health probe.
//! - [`local`]: the local engine, the embedded default (offline, deterministic).
//! - [`topics`]: the topic lexicon both apps and the local engine share.

pub mod bedrock;
pub mod cached;
pub mod local;
pub mod port;
pub mod topics;

pub use bedrock::{BedrockLlm, BedrockProbe, BedrockSettings, Usage};
pub use cached::CachedLlm;
pub use local::LocalEngine;
pub use port::{
    ChatReply, ChatRequest, Content, ContentKind, ContentRequest, ConversationAnalysis, Language,
    Llm, LlmError, SharedLlm, Topic, usable_text,
};
