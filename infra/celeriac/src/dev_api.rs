//! Routes only `celeriac dev` serves: enqueue and revoke by task name, for the
//! `celeriac call` command (through `CELERIAC_URL`) and for trying tasks with curl, and the
//! API's OpenAPI document. On AWS tasks are enqueued by the functions that own them, so
//! these routes have no Lambda.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use axum::{Json, Router};
use celeriac_platform::Error;
use celeriac_tasks::state::Revoke;
use celeriac_tasks::{Registry, SendOptions, TaskClient, TaskError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Path that enqueues a task by name.
pub const CALL_PATH: &str = "/_celeriac/tasks";

#[derive(Clone)]
struct DevTasks {
    registry: Arc<Registry>,
    client: TaskClient,
}

/// `POST /_celeriac/tasks` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// Registered task name.
    pub task: String,
    /// Its arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// Seconds to wait before it may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countdown: Option<f64>,
    /// Instant before which it may not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    /// Instant after which it is revoked instead of run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// Another queue than the task's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// 0..=9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// `POST /_celeriac/tasks` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallResponse {
    /// The new task's id.
    pub task_id: String,
    /// Its state now: PENDING.
    pub state: String,
}

/// A countdown in seconds, checked: never negative, never absurd.
pub fn countdown(seconds: Option<f64>) -> Result<Option<Duration>, String> {
    match seconds {
        Some(s) if !(0.0..=31_536_000.0).contains(&s) => {
            Err("countdown must be between 0 and one year, in seconds".into())
        }
        Some(s) => Ok(Some(Duration::from_secs_f64(s))),
        None => Ok(None),
    }
}

/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/_celeriac/openapi.yaml";

/// The API's OpenAPI document (`infra/celeriac/openapi.yaml`; a system test keeps it in
/// step with template.yaml).
pub const OPENAPI: &str = include_str!("../openapi.yaml");

/// The dev-only routes.
pub fn router(registry: Arc<Registry>, client: TaskClient) -> Router {
    Router::new()
        .route(CALL_PATH, post(call))
        .route("/_celeriac/tasks/{task_id}/revoke", post(revoke))
        .with_state(DevTasks { registry, client })
        .route(
            OPENAPI_PATH,
            get(|| async { ([(CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
}

async fn call(
    State(dev): State<DevTasks>,
    body: Result<Json<CallRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CallResponse>), Error> {
    let Json(request) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    let task = dev.registry.get(&request.task).ok_or_else(|| {
        let known: Vec<_> = dev.registry.names().collect();
        Error::BadRequest(format!(
            "no task named {:?}; known tasks: {}",
            request.task,
            known.join(", ")
        ))
    })?;
    let countdown = countdown(request.countdown).map_err(Error::BadRequest)?;
    let options = SendOptions {
        countdown,
        eta: request.eta,
        expires: request.expires,
        queue: request.queue,
        priority: request.priority,
        ..SendOptions::default()
    };
    let args = if request.args.is_null() {
        serde_json::json!({})
    } else {
        request.args
    };
    let task_id = dev
        .client
        .send(&task.spec(), args, options)
        .await
        .map_err(|e| match e {
            TaskError::Permanent(m) => Error::BadRequest(m),
            TaskError::Retryable(m) => Error::Unavailable {
                component: "queue",
                reason: m,
            },
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CallResponse {
            task_id,
            state: "PENDING".into(),
        }),
    ))
}

async fn revoke(
    State(dev): State<DevTasks>,
    Path(task_id): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    match dev.client.store().revoke(&task_id).await? {
        Revoke::Unknown => Err(Error::NotFound(format!("no task {task_id}"))),
        Revoke::Revoked => Ok(Json(
            serde_json::json!({"task_id": task_id, "state": "REVOKED"}),
        )),
        Revoke::AlreadyStarted => Err(Error::Conflict(format!(
            "task {task_id} is running or has finished; only a task waiting to run can be revoked"
        ))),
    }
}
