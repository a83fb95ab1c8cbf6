//! The recall endpoints, one router each (one Lambda function each; `celeriac dev` merges
//! them):
//!
//! | method and path | router |
//! |---|---|
//! | `POST /api/conversations/` | [`create`] |
//! | `GET /api/conversations/{id}/` | [`show`] |
//!
//! Both need a Bearer session (the accounts' login). A conversation is its owner's only:
//! another user's id answers 404, as an unknown one does.

use anyhow::Context;
use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use celeriac_platform::Error;
use celeriac_platform::json::JsonBody;
use celeriac_platform_functions::Adapters;
use celeriac_sessions::{Authenticated, SessionConfig, Sessions};
use celeriac_tasks::TaskClient;
use serde::Deserialize;
use serde_json::json;

use crate::RecallBackend;
use crate::store::{Conversation, NewConversation, Priority};

/// `POST /api/conversations/`.
pub const CONVERSATIONS_PATH: &str = "/api/conversations/";
/// `GET /api/conversations/{id}/`.
pub const CONVERSATION_PATH: &str = "/api/conversations/{id}/";

/// Longest conversation, in characters (a long meeting transcript fits; a book does not).
pub const MAX_CONTENT_CHARS: usize = 50_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_POST_TYPE_CHARS: usize = 50;

/// What the recall endpoints work with.
#[derive(Debug, Clone)]
pub struct RecallApi {
    /// Conversations and the model.
    pub backend: RecallBackend,
    /// Sessions, for the logged-in user.
    pub sessions: Sessions,
    /// Enqueues analyses (creation only).
    pub client: Option<TaskClient>,
}

impl FromRef<RecallApi> for Sessions {
    fn from_ref(api: &RecallApi) -> Self {
        api.sessions.clone()
    }
}

impl RecallApi {
    /// The endpoints over `backend`, with sessions in the adapters' key-value store.
    pub fn open(
        adapters: &Adapters,
        backend: RecallBackend,
        client: Option<TaskClient>,
    ) -> anyhow::Result<Self> {
        let kv = adapters
            .kv
            .clone()
            .context("recall needs Redis for sessions: set REDIS_URL")?;
        Ok(Self {
            backend,
            sessions: Sessions::new(kv, SessionConfig::default()),
            client,
        })
    }
}

/// `POST /api/conversations/`.
pub fn create(api: RecallApi) -> Router {
    Router::new()
        .route(CONVERSATIONS_PATH, post(create_conversation))
        .with_state(api)
}

/// `GET /api/conversations/{id}/`.
pub fn show(api: RecallApi) -> Router {
    Router::new()
        .route(CONVERSATION_PATH, get(show_conversation))
        .with_state(api)
}

/// Both routers, merged (the dev runner's view).
pub fn all(api: RecallApi) -> Router {
    Router::new().merge(create(api.clone())).merge(show(api))
}

/// Runs one recall endpoint as a Lambda function. Creation enqueues, so it needs a
/// queue: without one the function fails at init, naming what to set.
pub async fn run_lambda_endpoint(
    service: &str,
    router: fn(RecallApi) -> Router,
    needs_queue: bool,
) -> Result<(), lambda_http::Error> {
    celeriac_platform_functions::run_endpoint(service, |config, adapters| {
        let client = adapters.task_client(config, service);
        if needs_queue && client.is_none() {
            anyhow::bail!(
                "{service} enqueues analyses: set TASK_QUEUE_URL (SQS) or TASK_TRANSPORT=redis"
            );
        }
        Ok(router(RecallApi::open(
            adapters,
            RecallBackend::open(adapters)?,
            client,
        )?))
    })
    .await
}

/// The body of `POST /api/conversations/`. The optional fields may also be `null`, which
/// means the same as leaving them out (the API document says so).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConversationBody {
    content: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    post_type: Option<String>,
    #[serde(default)]
    priority: Option<String>,
}

/// An optional text field: at most `max` characters as sent (so the document's
/// `maxLength` is exact), then trimmed; blank is the same as absent.
fn bounded(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Error> {
    if value.as_ref().is_some_and(|v| v.chars().count() > max) {
        return Err(Error::BadRequest(format!(
            "{field}: at most {max} characters"
        )));
    }
    Ok(value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
}

impl NewConversationBody {
    fn validate(self, owner_id: String) -> Result<NewConversation, Error> {
        // Decided here, before anything is stored or enqueued, by the rule the model
        // applies: text it refuses would fail its analysis on every attempt.
        celeriac_llm::usable_text("content", &self.content)?;
        if self.content.chars().count() > MAX_CONTENT_CHARS {
            return Err(Error::BadRequest(format!(
                "content: at most {MAX_CONTENT_CHARS} characters"
            )));
        }
        let priority = match self.priority.as_deref() {
            None => Priority::Default,
            Some(name) => Priority::parse(name)
                .ok_or_else(|| Error::BadRequest("priority: one of high, default, low".into()))?,
        };
        Ok(NewConversation {
            owner_id,
            title: bounded("title", self.title, MAX_TITLE_CHARS)?,
            post_type: bounded("post_type", self.post_type, MAX_POST_TYPE_CHARS)?
                .unwrap_or_else(|| "update".into()),
            content: self.content,
            priority,
        })
    }
}

async fn create_conversation(
    State(api): State<RecallApi>,
    auth: Authenticated,
    JsonBody(body): JsonBody<NewConversationBody>,
) -> Result<Response, Error> {
    let new = body.validate(auth.user_id)?;
    let backend = &api.backend;
    let mut conversation = backend.store.create(new).await?;
    // The seed's graceful degradation: a queue that is down does not lose the
    // conversation; it is marked, and `retry_deferred_conversations` enqueues it later.
    let enqueued = match &api.client {
        Some(client) => backend.enqueue(client, &conversation).await,
        None => Err(celeriac_tasks::TaskError::Retryable(
            "no queue configured".into(),
        )),
    };
    let (processing, task_id) = match enqueued {
        Ok(task_id) => ("queued", Some(task_id)),
        Err(err) => {
            tracing::warn!(conversation_id = conversation.id, error = %err, "analysis not enqueued; deferred to the retry schedule");
            backend
                .store
                .set_enqueue_pending(conversation.id, true)
                .await?;
            conversation.ai_enqueue_pending = true;
            ("deferred", None)
        }
    };
    tracing::info!(
        conversation_id = conversation.id,
        priority = conversation.priority.as_str(),
        processing,
        "conversation stored"
    );
    let mut body = serde_json::to_value(&conversation).map_err(Error::internal)?;
    body["processing"] = json!(processing);
    body["task_id"] = json!(task_id);
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn show_conversation(
    State(api): State<RecallApi>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<axum::Json<Conversation>, Error> {
    let not_found = || Error::NotFound("no such conversation".into());
    let id: i64 = id.parse().map_err(|_| not_found())?;
    match api.backend.store.get(id).await? {
        Some(conversation) if conversation.owner_id == auth.user_id => Ok(axum::Json(conversation)),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> Result<NewConversation, Error> {
        let body: NewConversationBody = serde_json::from_value(value).expect("the body parses");
        body.validate("owner".into())
    }

    #[test]
    fn null_optional_fields_mean_the_defaults() {
        let new = body(json!({
            "content": "Anna: the report is due on Friday.",
            "title": null,
            "post_type": null,
            "priority": null,
        }))
        .expect("valid");
        assert_eq!(new.priority, Priority::Default);
        assert_eq!(new.title, None);
        assert_eq!(new.post_type, "update");
    }

    #[test]
    fn bad_fields_are_named() {
        let refused = |value: serde_json::Value, field: &str| {
            let err = body(value.clone()).expect_err("refused");
            assert!(err.to_string().contains(field), "{value}: {err}");
        };
        refused(json!({"content": " \n\t\u{3000}"}), "content");
        refused(json!({"content": "hi", "priority": "urgent"}), "priority");
        // The limit counts the characters as sent, blanks included.
        let padded = format!("{}x", " ".repeat(MAX_TITLE_CHARS));
        refused(json!({"content": "hi", "title": padded}), "title");
        let title = "t".repeat(MAX_TITLE_CHARS);
        let new = body(json!({"content": "hi", "title": title})).expect("at the limit");
        assert_eq!(new.title.map(|t| t.len()), Some(MAX_TITLE_CHARS));
    }
}
