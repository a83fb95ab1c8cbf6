//! `GET /task/{task_id}/status` and `GET /webhook/task-status/{task_id}`: a task's state,
//! result or error, retries and timestamps, from the task store. Unknown ids are 404
//! (Celery would say PENDING forever; a client deserves to know the id is wrong or gone).
//!
//! Who may read: a task enqueued on a user's behalf (its record has an `owner`: a chat's
//! topic analysis, a conversation's processing) is shown to that user's session only;
//! anyone else, logged in or not, gets the same 404 as for an unknown id, so a task id
//! that leaks (a log line, a shared screen) does not leak the result. Tasks of the system
//! (schedules, `celeriac call`, `test_celery`) have no owner and are public, as in Celery.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use celeriac_kv::SharedKv;
use celeriac_platform::Error;
use celeriac_sessions::{SessionConfig, Sessions};
use celeriac_tasks::{TaskRecord, TaskStore};
use http::HeaderMap;
use serde::Serialize;

/// Path of the wellness app's status endpoint.
pub const TASK_PATH: &str = "/task/{task_id}/status";
/// Path of the calendar app's status endpoint.
pub const WEBHOOK_PATH: &str = "/webhook/task-status/{task_id}";

/// The body: the record, with `state` beside Celery's `status` for clients of either.
#[derive(Debug, Serialize)]
pub struct TaskStatus {
    /// Same as `status`.
    pub state: celeriac_tasks::TaskState,
    /// The stored record.
    #[serde(flatten)]
    pub record: TaskRecord,
}

/// The records and the sessions that decide who sees them, both in one key-value store.
#[derive(Debug, Clone)]
struct StatusReader {
    store: TaskStore,
    sessions: Sessions,
}

/// Routes for one status path (`TASK_PATH` or `WEBHOOK_PATH`) over the key-value store
/// that holds task records and sessions (none: every request is 503, naming what to set).
pub fn router(path: &'static str, kv: Option<SharedKv>) -> Router {
    let reader = kv.map(|kv| StatusReader {
        store: TaskStore::new(kv.clone()),
        sessions: Sessions::new(kv, SessionConfig::default()),
    });
    Router::new().route(path, get(status)).with_state(reader)
}

/// Task ids are UUIDs from celeriac, but other producers choose their own; accept plain
/// tokens, refuse anything that could not be one.
fn check_id(id: &str) -> Result<(), Error> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if plain {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "task id must be 1 to 128 letters, digits, '-', '_', '.' or ':'".into(),
        ))
    }
}

async fn status(
    State(reader): State<Option<StatusReader>>,
    Path(task_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TaskStatus>, Error> {
    check_id(&task_id)?;
    let reader = reader.ok_or_else(|| Error::Unavailable {
        component: "redis",
        reason: "no task state store is configured (set REDIS_URL)".into(),
    })?;
    let caller = celeriac_sessions::caller(&reader.sessions, &headers).await?;
    let record = reader
        .store
        .get(&task_id)
        .await?
        .filter(|record| match &record.owner {
            None => true,
            Some(owner) => caller.as_deref() == Some(owner.as_str()),
        })
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no task {task_id} (unknown, its record expired, or it is another user's)"
            ))
        })?;
    Ok(Json(TaskStatus {
        state: record.status,
        record,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use celeriac_kv::{MemoryKv, SharedKv};
    use celeriac_platform::config::HttpConfig;
    use celeriac_tasks::{Envelope, TaskState};
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: Router, event: &str) -> (StatusCode, serde_json::Value) {
        call_as(app, event, None).await
    }

    /// The `events/` sample, with `bearer`'s session when given.
    async fn call_as(
        app: Router,
        event: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let path = format!("{}/../../events/{event}.json", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read_to_string(&path).expect("events/ sample");
        let mut request = lambda_http::request::from_str(&json)
            .expect("API Gateway event")
            .map(|b| Body::from(b.to_vec()));
        if let Some(token) = bearer {
            let value = format!("Bearer {token}").parse().expect("header value");
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        let app = celeriac_platform::http::app(app, &HttpConfig::default());
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    /// A store holding the finished task of the `known` samples, owned by `owner`.
    async fn store_with_record_of(owner: Option<&str>) -> SharedKv {
        let kv: SharedKv = Arc::new(MemoryKv::new());
        let store = TaskStore::new(kv.clone());
        let mut envelope: Envelope = serde_json::from_value(serde_json::json!({
            "id": "0b5e2f1e-1111-4c2a-9a55-3f1e0c9d7a10",
            "task": "test_celery",
            "args": {"word": "ping"},
            "queue": "main-queue",
            "enqueued_at": "2026-11-22T03:00:00Z"
        }))
        .expect("envelope");
        envelope.owner = owner.map(str::to_owned);
        let mut record = TaskRecord::pending(&envelope);
        record.status = TaskState::Success;
        record.result = Some(serde_json::json!("test task return ping"));
        store.put(&record).await.expect("put");
        kv
    }

    async fn store_with_record() -> SharedKv {
        store_with_record_of(None).await
    }

    async fn session_of(kv: &SharedKv, user_id: &str) -> String {
        let sessions = Sessions::new(kv.clone(), SessionConfig::default());
        let created = sessions.create(user_id, None).await.expect("session");
        created.token.as_str().to_owned()
    }

    #[tokio::test]
    async fn a_users_task_is_shown_to_that_users_session_only() {
        let kv = store_with_record_of(Some("owner-1")).await;
        let owner = session_of(&kv, "owner-1").await;
        let other = session_of(&kv, "someone-else").await;
        for path in [TASK_PATH, WEBHOOK_PATH] {
            let event = if path == TASK_PATH {
                "task_status/known"
            } else {
                "webhook_task_status/known"
            };
            let app = || router(path, Some(kv.clone()));
            let (status, body) = call_as(app(), event, Some(&owner)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["result"], "test task return ping");

            for bearer in [None, Some(other.as_str())] {
                let (status, body) = call_as(app(), event, bearer).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{bearer:?}: {body}");
                assert!(body.get("result").is_none(), "{body}");
            }
            let (status, _) = call_as(app(), event, Some("not-a-live-token")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }

    #[tokio::test]
    async fn a_known_task_answers_with_its_state_and_result() {
        let store = store_with_record().await;
        let (status, body) =
            call(router(TASK_PATH, Some(store.clone())), "task_status/known").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "SUCCESS");
        assert_eq!(body["status"], "SUCCESS");
        assert_eq!(body["result"], "test task return ping");
        assert_eq!(body["task"], "test_celery");

        let (status, body) = call(
            router(WEBHOOK_PATH, Some(store)),
            "webhook_task_status/known",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "SUCCESS");
    }

    #[tokio::test]
    async fn an_unknown_task_is_404_and_a_bad_id_is_400() {
        let store = store_with_record().await;
        let (status, body) = call(
            router(TASK_PATH, Some(store.clone())),
            "task_status/unknown",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
        let (status, _) = call(router(TASK_PATH, Some(store)), "task_status/bad-id").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn without_a_store_it_is_503_not_500() {
        let (status, body) = call(router(TASK_PATH, None), "task_status/known").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
}
