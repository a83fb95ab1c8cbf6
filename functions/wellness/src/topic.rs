//! Topics as users write them and as the catalogue files them.
//!
//! A topic travels as its label in the user's language (`стресс`, `sleep`): generated
//! content follows that language, and the seed's clients show it as is. The catalogue
//! files videos and articles under language-neutral ids (`stress`), which the topic
//! lexicon of `celeriac_llm::topics` gives for a label in either language.

use celeriac_llm::{Language, Topic};
use celeriac_platform::Error;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest topic label accepted from a query string, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Longest user id, in bytes.
pub const MAX_USER_ID_BYTES: usize = 64;

/// A user's current topic, as `user_topic:{user_id}` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTopic {
    /// The label in the user's language.
    pub label: String,
    /// The lexicon id, when the label is a known topic.
    pub topic_id: Option<String>,
    /// The language of the message it came from.
    pub language: Language,
    /// When it was extracted.
    pub updated_at: DateTime<Utc>,
}

impl UserTopic {
    /// The topic the model found, labelled as the content keys expect.
    pub fn from_model(topic: &Topic, now: DateTime<Utc>) -> Self {
        let label = normalise(&topic.label);
        Self {
            topic_id: topic_id(&label).map(str::to_owned),
            label,
            language: topic.language,
            updated_at: now,
        }
    }
}

/// The lexicon id of a label in any language (`стресс` and `stress` give `stress`).
pub fn topic_id(label: &str) -> Option<&'static str> {
    celeriac_llm::topics::lookup(label).map(|entry| entry.id.as_str())
}

/// Lowercase, trimmed, inner whitespace collapsed: one spelling per topic in keys.
pub fn normalise(label: &str) -> String {
    label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A `?topic=` value as sent: at most [`MAX_LABEL_CHARS`] characters, no control
/// characters (tabs and newlines included), something besides whitespace; normalised.
/// The limits apply to the raw value, so the API document can state them exactly.
pub fn parse_label(raw: &str) -> Result<String, Error> {
    if raw.chars().count() > MAX_LABEL_CHARS {
        return Err(Error::BadRequest(format!(
            "topic: at most {MAX_LABEL_CHARS} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "topic: control characters are not allowed".into(),
        ));
    }
    let label = normalise(raw);
    if label.is_empty() {
        return Err(Error::BadRequest("topic: must not be empty".into()));
    }
    Ok(label)
}

/// A user id from a path or a body: 1 to [`MAX_USER_ID_BYTES`] bytes of letters, digits,
/// `-`, `_`, `.` and `@` (the seed's ids are numbers or emails). It becomes part of
/// cache keys, so nothing else gets in.
pub fn check_user_id(raw: &str) -> Result<&str, Error> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_USER_ID_BYTES
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(raw)
    } else {
        Err(Error::BadRequest(format!(
            "user_id: 1 to {MAX_USER_ID_BYTES} letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalised_and_checked() {
        assert_eq!(
            parse_label("  Стресс  на   работе ").expect("ok"),
            "стресс на работе"
        );
        assert!(parse_label("   ").is_err());
        assert!(parse_label(&"a".repeat(65)).is_err());
        assert!(parse_label("sleep\u{7}").is_err());
        // Checked as sent: a tab or a newline is refused, not normalised away, and the
        // length counts the spaces normalising would collapse.
        assert!(parse_label("sleep\n").is_err());
        assert!(parse_label("\tsleep").is_err());
        assert!(parse_label(&format!("a{}b", " ".repeat(63))).is_err());
        assert_eq!(parse_label(&"a".repeat(64)).expect("64 is fine").len(), 64);
    }

    #[test]
    fn user_ids_are_key_safe() {
        assert!(check_user_id("42").is_ok());
        assert!(check_user_id("anna@example.com").is_ok());
        assert!(check_user_id("").is_err());
        assert!(check_user_id("a b").is_err());
        assert!(check_user_id("x:y").is_err());
        assert!(check_user_id(&"1".repeat(65)).is_err());
    }

    #[test]
    fn labels_in_either_language_share_the_catalogue_id() {
        assert_eq!(topic_id("стресс"), Some("stress"));
        assert_eq!(topic_id("stress"), Some("stress"));
    }
}
