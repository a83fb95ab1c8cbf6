//! `GET /task/{task_id}/status` and `GET /webhook/task-status/{task_id}`: a task's state,
//! result or error, retries and timestamps, from the task store. Unknown ids are 404
//! (Celery would say PENDING forever; a client deserves to know the id is wrong or gone).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use celeriac_platform::Error;
use celeriac_tasks::{TaskRecord, TaskStore};
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

/// Routes for one status path (`TASK_PATH` or `WEBHOOK_PATH`).
pub fn router(path: &'static str, store: Option<TaskStore>) -> Router {
    Router::new().route(path, get(status)).with_state(store)
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
    State(store): State<Option<TaskStore>>,
    Path(task_id): Path<String>,
) -> Result<Json<TaskStatus>, Error> {
    check_id(&task_id)?;
    let store = store.ok_or_else(|| Error::Unavailable {
        component: "redis",
        reason: "no task state store is configured (set REDIS_URL)".into(),
    })?;
    let record = store.get(&task_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "no task {task_id} (unknown, or its record expired)"
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
        let path = format!("{}/../../events/{event}.json", env!("CARGO_MANIFEST_DIR"));
        let json = std::fs::read_to_string(&path).expect("events/ sample");
        let request = lambda_http::request::from_str(&json)
            .expect("API Gateway event")
            .map(|b| Body::from(b.to_vec()));
        let app = celeriac_platform::http::app(app, &HttpConfig::default());
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    async fn store_with_record() -> TaskStore {
        let kv: SharedKv = Arc::new(MemoryKv::new());
        let store = TaskStore::new(kv);
        let envelope: Envelope = serde_json::from_value(serde_json::json!({
            "id": "0b5e2f1e-1111-4c2a-9a55-3f1e0c9d7a10",
            "task": "test_celery",
            "args": {"word": "ping"},
            "queue": "main-queue",
            "enqueued_at": "2026-11-22T03:00:00Z"
        }))
        .expect("envelope");
        let mut record = TaskRecord::pending(&envelope);
        record.status = TaskState::Success;
        record.result = Some(serde_json::json!("test task return ping"));
        store.put(&record).await.expect("put");
        store
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
