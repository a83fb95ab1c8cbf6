//! The LLM port and its adapters.
//!
//! This crate grows into the port the apps use (chat reply, topics, content, conversation
//! analysis). Today it holds the Bedrock health probe, so `GET /api/health/` can say
//! whether the configured model answers.

pub mod bedrock;

pub use bedrock::BedrockProbe;
