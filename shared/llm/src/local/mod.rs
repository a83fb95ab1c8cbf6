//! The local engine: the embedded default LLM adapter. Deterministic, offline, and no
//! model at all: keywords by YAKE (the `yake-rust` crate, with its English and Russian
//! stop words), topics from the lexicon by Snowball stems, an extractive summary, action
//! items picked by cue phrases, and replies and content written from templates.
//!
//! Good enough for development and demos in both languages the seed's users write; the
//! Bedrock adapter is the one for production answers.

mod analysis;
mod text;
mod writing;

use async_trait::async_trait;

pub use analysis::is_action;

use crate::port::{
    ChatReply, ChatRequest, Content, ContentRequest, ConversationAnalysis, Language, Llm, LlmError,
    Topic,
};
use crate::topics;

/// The engine's version: part of the cache key, so answers cached by an older engine are
/// not served after its rules change.
pub const MODEL: &str = "local-v3";

/// The local engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEngine;

impl LocalEngine {
    /// The engine (it holds nothing: the lexicon and stop words are compiled in).
    pub fn new() -> Self {
        Self
    }
}

/// The input trimmed; only blank input is refused, as Bedrock's Converse refuses blank
/// text. Text without a letter or digit (`👍`, `?!`) is something a user can write, and
/// gets an answer like any other.
fn required<'a>(what: &str, text: &'a str) -> Result<&'a str, LlmError> {
    let text = text.trim();
    if text.is_empty() {
        Err(LlmError::Rejected(format!("{what} is empty")))
    } else {
        Ok(text)
    }
}

/// The label of the topic `text` is about, in `language`: the lexicon's, or its general
/// topic when no word signals one (a follow-up like "how do I cope?" names no topic; the
/// caller decides whether that replaces an earlier one).
fn topic_label(text: &str, language: Language) -> String {
    topics::best_match(text)
        .unwrap_or_else(topics::general)
        .label(language)
        .to_owned()
}

#[async_trait]
impl Llm for LocalEngine {
    fn adapter(&self) -> &'static str {
        "local"
    }

    fn model(&self) -> &str {
        MODEL
    }

    async fn chat_reply(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        let message = required("the message", &request.message)?;
        let language = Language::detect(message);
        // The known topic, in the reply's language when the lexicon has it; else what
        // this message is about, if anything.
        let topic = match &request.topic {
            Some(topic) => Some(
                topics::lookup(topic)
                    .map_or_else(|| topic.clone(), |e| e.label(language).to_owned()),
            ),
            None => topics::best_match(message).map(|e| e.label(language).to_owned()),
        };
        Ok(ChatReply {
            text: writing::reply(message, topic.as_deref(), language),
            language,
        })
    }

    async fn extract_topic(&self, message: &str) -> Result<Topic, LlmError> {
        let message = required("the message", message)?;
        let language = Language::detect(message);
        Ok(Topic {
            label: topic_label(message, language),
            language,
        })
    }

    async fn generate_content(&self, request: &ContentRequest) -> Result<Content, LlmError> {
        let topic = required("the topic", &request.topic)?;
        Ok(writing::content(
            request.kind,
            topic,
            request.date,
            request.language,
        ))
    }

    async fn analyse_conversation(&self, content: &str) -> Result<ConversationAnalysis, LlmError> {
        let content = required("the conversation", content)?;
        Ok(analysis::analyse(content))
    }
}
