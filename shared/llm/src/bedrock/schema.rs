//! The tools the model is made to call, and the checks its tool input must pass before it
//! becomes one of the port's values.

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::port::{Content, ContentKind, ConversationAnalysis, LlmError};

/// Longest topic label, in characters.
const MAX_LABEL_CHARS: usize = 64;
/// Action items and keywords kept at most.
const MAX_ITEMS: usize = 20;
const MAX_KEYWORDS: usize = 12;
/// Longest action item or keyword, in characters.
const MAX_ITEM_CHARS: usize = 500;

/// A tool the model must call.
pub struct ToolCall {
    /// Its name.
    pub name: &'static str,
    /// What it records.
    pub description: &'static str,
    /// JSON schema of its input.
    pub schema: Value,
}

/// `record_topic`.
pub fn topic_tool() -> ToolCall {
    ToolCall {
        name: "record_topic",
        description: "Record the topic of the message.",
        schema: json!({
            "type": "object",
            "properties": {"label": {"type": "string", "description": "one to three lowercase words"}},
            "required": ["label"],
        }),
    }
}

/// `record_content`.
pub fn content_tool() -> ToolCall {
    ToolCall {
        name: "record_content",
        description: "Record the written quote or article.",
        schema: json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "body": {"type": "string"},
                "author": {"type": "string"},
            },
            "required": ["body"],
        }),
    }
}

/// `record_analysis`.
pub fn analysis_tool() -> ToolCall {
    ToolCall {
        name: "record_analysis",
        description: "Record the analysis of the conversation.",
        schema: json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "action_items": {"type": "array", "items": {"type": "string"}},
                "keywords": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["summary", "action_items", "keywords"],
        }),
    }
}

fn malformed(operation: &str, what: &str) -> LlmError {
    LlmError::Malformed(format!("{operation}: {what}"))
}

/// Trimmed, non-empty, deduplicated, bounded strings.
fn clean_list(items: Vec<String>, keep: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let item: String = item.trim().chars().take(MAX_ITEM_CHARS).collect();
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
        if out.len() == keep {
            break;
        }
    }
    out
}

/// `record_topic`'s input.
#[derive(Debug, Deserialize)]
pub struct TopicInput {
    label: String,
}

impl TopicInput {
    /// The label, lowercase and trimmed.
    pub fn validate(self) -> Result<String, LlmError> {
        let label = self.label.trim().to_lowercase();
        if label.is_empty() {
            return Err(malformed("topic", "the label is empty"));
        }
        if label.chars().count() > MAX_LABEL_CHARS {
            return Err(malformed("topic", "the label is longer than 64 characters"));
        }
        Ok(label)
    }
}

/// `record_content`'s input.
#[derive(Debug, Deserialize)]
pub struct ContentInput {
    #[serde(default)]
    title: Option<String>,
    body: String,
    #[serde(default)]
    author: Option<String>,
}

impl ContentInput {
    /// The content of `kind`: a body always, a title for an article.
    pub fn validate(self, kind: ContentKind) -> Result<Content, LlmError> {
        let present = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let body = self.body.trim().to_owned();
        if body.is_empty() {
            return Err(malformed(kind.as_str(), "the body is empty"));
        }
        let title = present(self.title);
        if kind == ContentKind::Article && title.is_none() {
            return Err(malformed("article", "the title is missing"));
        }
        Ok(Content {
            kind,
            title: if kind == ContentKind::Article {
                title
            } else {
                None
            },
            body,
            author: present(self.author),
        })
    }
}

/// `record_analysis`'s input.
#[derive(Debug, Deserialize)]
pub struct AnalysisInput {
    summary: String,
    action_items: Vec<String>,
    keywords: Vec<String>,
}

impl AnalysisInput {
    /// The analysis: a summary always; items and keywords cleaned (an empty list is a
    /// legitimate answer: small talk has no action items).
    pub fn validate(self) -> Result<ConversationAnalysis, LlmError> {
        let summary = self.summary.trim().to_owned();
        if summary.is_empty() {
            return Err(malformed("analysis", "the summary is empty"));
        }
        Ok(ConversationAnalysis {
            summary,
            action_items: clean_list(self.action_items, MAX_ITEMS),
            keywords: clean_list(
                self.keywords
                    .into_iter()
                    .map(|k| k.to_lowercase())
                    .collect(),
                MAX_KEYWORDS,
            ),
        })
    }
}

/// A smithy document as JSON.
pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Number(Number::PosInt(n)) => json!(n),
        Document::Number(Number::NegInt(n)) => json!(n),
        Document::Number(Number::Float(f)) => json!(f),
        Document::String(s) => Value::String(s.clone()),
        Document::Bool(b) => Value::Bool(*b),
        Document::Null => Value::Null,
    }
}

/// JSON as a smithy document.
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Document::Number(Number::PosInt(u)),
            (_, Some(i), _) => Document::Number(Number::NegInt(i)),
            (_, _, f) => Document::Number(Number::Float(f.unwrap_or(0.0))),
        },
        Value::String(s) => Document::String(s.clone()),
        Value::Bool(b) => Document::Bool(*b),
        Value::Null => Document::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(to_json(&to_document(&value)))
    }

    #[test]
    fn documents_and_json_round_trip() {
        let value = json!({"a": [1, -2, 2.5, "x", true, null], "b": {"c": "d"}});
        assert_eq!(to_json(&to_document(&value)), value);
    }

    #[test]
    fn analysis_is_cleaned_and_an_empty_summary_refused() {
        let analysis = parse::<AnalysisInput>(json!({
            "summary": "  Report due Friday. ",
            "action_items": ["Submit the report by Friday", "", "Submit the report by Friday"],
            "keywords": ["Report", " deadline "],
        }))
        .expect("shape")
        .validate()
        .expect("valid");
        assert_eq!(analysis.summary, "Report due Friday.");
        assert_eq!(analysis.action_items, ["Submit the report by Friday"]);
        assert_eq!(analysis.keywords, ["report", "deadline"]);

        let empty =
            parse::<AnalysisInput>(json!({"summary": " ", "action_items": [], "keywords": []}))
                .expect("shape")
                .validate();
        assert!(matches!(empty, Err(LlmError::Malformed(m)) if m.contains("summary")));
        assert!(
            parse::<AnalysisInput>(json!({"summary": "s", "action_items": "nope", "keywords": []}))
                .is_err()
        );
    }

    #[test]
    fn content_needs_a_body_and_an_article_a_title() {
        let quote = parse::<ContentInput>(json!({"body": "Rest.", "author": "Ovid", "title": ""}))
            .expect("shape")
            .validate(ContentKind::Quote)
            .expect("valid");
        assert_eq!((quote.title, quote.author.as_deref()), (None, Some("Ovid")));
        let untitled = parse::<ContentInput>(json!({"body": "Text"}))
            .expect("shape")
            .validate(ContentKind::Article);
        assert!(matches!(untitled, Err(LlmError::Malformed(_))));
        let label = parse::<TopicInput>(json!({"label": " Стресс "}))
            .expect("shape")
            .validate();
        assert_eq!(label.expect("valid"), "стресс");
    }
}
