//! The task message: what travels on every transport, as JSON.
//!
//! Field names follow Celery's message protocol v2 headers (`id`, `task`, `retries`,
//! `eta`, `expires`, `root_id`, `parent_id`, `priority`, `timelimit`, `origin`), so that a
//! codec for messages from Celery producers is a thin mapping later. `args` carries the
//! task's typed arguments as one JSON value (Celery's kwargs).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One task invocation, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Task id (a UUID), also the key of its state record.
    pub id: String,
    /// Registered task name, e.g. `test_celery`.
    pub task: String,
    /// The task's arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// How many times this task has been retried before this message.
    #[serde(default)]
    pub retries: u32,
    /// Do not run before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    /// Do not run after this instant: the task is revoked instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// 0 (lowest) to 9 (highest), as Celery's `priority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The queue it was routed to.
    pub queue: String,
    /// The first task of the workflow this one belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_id: Option<String>,
    /// The task that sent this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Effects keyed by this run once however often the message is delivered; defaults
    /// to the task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Hard time limit in seconds (Celery's `timelimit` hard part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timelimit: Option<u64>,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// Who enqueued it (function name or `celeriac call`), Celery's `origin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Trace id of the request that enqueued it, for following one request across tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The user on whose behalf it was enqueued: only that user's session may read its
    /// state and result. None for tasks of the system (schedules, `celeriac call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Envelope {
    /// The key under which this task's effects are made idempotent.
    pub fn effect_key(&self) -> &str {
        self.idempotency_key.as_deref().unwrap_or(&self.id)
    }

    /// Parses a message body; the error says what is wrong without echoing the body.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body)
            .map_err(|e| format!("not a task envelope: {}", without_values(&e)))
    }

    /// The message body.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub use celeriac_platform::json::without_values;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_uses_celery_header_names() {
        let envelope = Envelope {
            id: "6f1c".into(),
            task: "test_celery".into(),
            args: serde_json::json!({"word": "ping"}),
            retries: 1,
            eta: None,
            expires: None,
            priority: Some(9),
            queue: "main-queue".into(),
            root_id: Some("6f1c".into()),
            parent_id: None,
            idempotency_key: None,
            timelimit: Some(30),
            enqueued_at: Utc::now(),
            origin: Some("celeriac call".into()),
            trace_id: None,
            owner: None,
        };
        let json: serde_json::Value = serde_json::from_str(&envelope.to_json()).expect("json");
        for key in [
            "id",
            "task",
            "args",
            "retries",
            "priority",
            "root_id",
            "timelimit",
            "origin",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(
            Envelope::from_json(envelope.to_json().as_bytes()),
            Ok(envelope)
        );
    }

    #[test]
    fn errors_name_fields_but_never_values() {
        let err = serde_json::from_str::<Envelope>(r#"{"id": "4111111111111111x", "task": 7}"#)
            .expect_err("task must be a string");
        let text = without_values(&err);
        assert!(!text.contains("integer `7`"), "{text}");
        assert!(text.contains("expected"), "{text}");
        let err = Envelope::from_json(br#"{"id": 4111111111111111, "task": "t"}"#)
            .expect_err("id must be a string");
        assert!(!err.contains("4111111111111111"), "{err}");
    }

    #[test]
    fn a_foreign_body_is_refused_with_a_reason() {
        let err = Envelope::from_json(b"{\"hello\": 1}").expect_err("no id");
        assert!(err.starts_with("not a task envelope"), "{err}");
    }
}
