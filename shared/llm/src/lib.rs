//! The LLM port and its adapters.
//!
//! - [`port`]: the operations the apps need (chat reply, topic, content, conversation
//!   analysis) as typed values, and [`LlmError`], which says whether a retry can help.
//! - [`cached`]: answers cached by content hash, over any adapter.
//! - [`bedrock`]: Amazon Bedrock through the Converse API, and its health probe.

pub mod bedrock;
pub mod cached;
pub mod port;

pub use bedrock::BedrockProbe;
pub use cached::CachedLlm;
pub use port::{
    ChatReply, ChatRequest, Content, ContentKind, ContentRequest, ConversationAnalysis, Language,
    Llm, LlmError, SharedLlm, Topic,
};
