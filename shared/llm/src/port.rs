//! The LLM port: what the apps ask of a language model, as typed values.
//!
//! Every operation returns a parsed, validated value. An adapter that talks to a model
//! turns its answer into these types itself and reports [`LlmError::Malformed`] when it
//! cannot, so no caller ever parses model text and nothing half-parsed is stored.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The language a text is written in, as far as the apps care: replies, topics and
/// generated content follow the user's language. The seed's users write Russian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English (and any other Latin-script text).
    En,
    /// Russian (any text whose letters are mostly Cyrillic).
    Ru,
}

impl Language {
    /// Cyrillic when more of its letters are Cyrillic than Latin, else English.
    pub fn detect(text: &str) -> Self {
        let (mut cyrillic, mut latin) = (0usize, 0usize);
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            if ('\u{0400}'..='\u{04FF}').contains(&c) {
                cyrillic += 1;
            } else if c.is_ascii_alphabetic() {
                latin += 1;
            }
        }
        if cyrillic > latin { Self::Ru } else { Self::En }
    }

    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }
}

/// A chat message to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// What the user wrote.
    pub message: String,
    /// The user's current topic, when one is known (it steers the reply).
    pub topic: Option<String>,
}

/// The model's reply to a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The reply, in the message's language.
    pub text: String,
    /// That language.
    pub language: Language,
}

/// What a message is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// A short lowercase label in the message's language (`стресс`, `sleep`).
    pub label: String,
    /// The message's language.
    pub language: Language,
}

/// The kinds of content the wellness app generates for a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// A short quote with its author.
    Quote,
    /// A short article with a title.
    Article,
}

impl ContentKind {
    /// The name used in cache keys and JSON (`quote`, `article`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Article => "article",
        }
    }
}

/// Content to generate: one kind, for a topic, for a day (the same day's request gives
/// the same content; the next day's may differ).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRequest {
    /// Quote or article.
    pub kind: ContentKind,
    /// The topic label.
    pub topic: String,
    /// The day it is for.
    pub date: NaiveDate,
    /// The language to write in.
    pub language: Language,
}

/// Generated content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// What was asked for.
    pub kind: ContentKind,
    /// The article's title (none for a quote).
    pub title: Option<String>,
    /// The quote or the article text.
    pub body: String,
    /// The quote's author, when known.
    pub author: Option<String>,
}

/// What a conversation comes down to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationAnalysis {
    /// A few sentences.
    pub summary: String,
    /// Things someone has to do, each one sentence (deadlines kept in).
    pub action_items: Vec<String>,
    /// Key words and phrases, most important first.
    pub keywords: Vec<String>,
}

/// The text `field` carries, trimmed, if a model can work with it: anything but blank.
/// Bedrock's Converse refuses blank text and answers everything else, `"?"` and `"🙂"`
/// included, so the local engine does the same, and a handler that checks this before it
/// stores or enqueues anything never starts a task that fails on every attempt.
pub fn usable_text<'a>(field: &str, text: &'a str) -> Result<&'a str, LlmError> {
    let text = text.trim();
    if text.is_empty() {
        Err(LlmError::Unusable(format!("{field}: must not be empty")))
    } else {
        Ok(text)
    }
}

/// Why a model call failed, and whether another attempt can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The model refused for rate or quota after the adapter's own retries.
    #[error("the model is throttling requests: {0}")]
    Throttled(String),
    /// Network failure, timeout or a server-side error.
    #[error("the model is unavailable: {0}")]
    Unavailable(String),
    /// The model answered, but not in the shape asked for; retrying the same input is
    /// unlikely to help, and nothing of the answer is kept.
    #[error("the model's answer is unusable: {0}")]
    Malformed(String),
    /// The request itself was refused (bad input, access denied, model not enabled).
    #[error("the model refused the request: {0}")]
    Rejected(String),
    /// The input gives the model nothing to work with (see [`usable_text`]); the message
    /// names the field and is safe to show to the client.
    #[error("{0}")]
    Unusable(String),
}

impl LlmError {
    /// Whether the same call can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled(_) | Self::Unavailable(_))
    }
}

impl From<LlmError> for celeriac_platform::Error {
    /// Input the model cannot use is the client's to fix (400). A model that is down,
    /// throttled or answered nonsense is 503: the same request can succeed later. A
    /// refusal of the request itself (access denied, model not enabled, a request the
    /// service calls invalid) is the deployment's fault, not the client's: 500, logged.
    /// The model's own error text goes to the log only.
    fn from(err: LlmError) -> Self {
        match err {
            LlmError::Unusable(message) => Self::BadRequest(message),
            LlmError::Throttled(_) | LlmError::Unavailable(_) | LlmError::Malformed(_) => {
                Self::Unavailable {
                    component: "llm",
                    reason: err.to_string(),
                }
            }
            LlmError::Rejected(_) => Self::internal(err),
        }
    }
}

/// A language model, as the apps use it.
#[async_trait]
pub trait Llm: Send + Sync + fmt::Debug {
    /// `bedrock` or `local`, for health and logs.
    fn adapter(&self) -> &'static str;

    /// The model (a Bedrock model id, or the local engine's version). Part of every cache
    /// key, so a model change never serves the old model's answers.
    fn model(&self) -> &str;

    /// A reply to a chat message, in its language.
    async fn chat_reply(&self, request: &ChatRequest) -> Result<ChatReply, LlmError>;

    /// The topic of a message.
    async fn extract_topic(&self, message: &str) -> Result<Topic, LlmError>;

    /// A quote or an article for a topic and day.
    async fn generate_content(&self, request: &ContentRequest) -> Result<Content, LlmError>;

    /// Summary, action items and keywords of a conversation.
    async fn analyse_conversation(&self, content: &str) -> Result<ConversationAnalysis, LlmError>;
}

/// The model handlers and tasks hold.
pub type SharedLlm = Arc<dyn Llm>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_follows_the_script_of_most_letters() {
        assert_eq!(
            Language::detect("Я чувствую стресс на работе"),
            Language::Ru
        );
        assert_eq!(Language::detect("I feel stressed at work"), Language::En);
        assert_eq!(Language::detect("Мой iPhone сломался"), Language::Ru);
        assert_eq!(Language::detect("123 !!"), Language::En);
    }

    #[test]
    fn only_throttling_and_outages_are_retried() {
        assert!(LlmError::Throttled("429".into()).is_retryable());
        assert!(LlmError::Unavailable("timeout".into()).is_retryable());
        assert!(!LlmError::Malformed("no tool use".into()).is_retryable());
        assert!(!LlmError::Rejected("access denied".into()).is_retryable());
        assert!(!LlmError::Unusable("message: ...".into()).is_retryable());
    }

    #[test]
    fn only_blank_text_is_unusable_and_it_is_a_400_naming_the_field() {
        for text in ["", "  \n ", "\t"] {
            let err = usable_text("message", text).expect_err(text);
            let error = celeriac_platform::Error::from(err);
            assert_eq!(error.status().as_u16(), 400, "{text:?}");
            assert!(error.to_string().contains("message"), "{error}");
        }
        for text in ["?", "🙂", "!!!", "7", "сон"] {
            assert_eq!(usable_text("message", text).ok(), Some(text));
        }
        assert_eq!(usable_text("message", " ok? ").ok(), Some("ok?"));
    }

    #[test]
    fn only_an_unavailable_model_is_a_503() {
        let status = |err: LlmError| celeriac_platform::Error::from(err).status().as_u16();
        assert_eq!(status(LlmError::Throttled("429".into())), 503);
        assert_eq!(status(LlmError::Unavailable("timeout".into())), 503);
        assert_eq!(status(LlmError::Rejected("access denied".into())), 500);
    }
}
