//! The one error type handlers return, and the one place it becomes an HTTP response or
//! a Lambda diagnostic.
//!
//! Clients get `{"error": {"code", "message"}}` with the status that tells them what to
//! do; an internal error's detail goes to the log, never to the client. Each variant says
//! whether trying again can help ([`Error::is_retryable`]), which the task runtime uses to
//! decide between a retry and the dead-letter queue.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Boxed cause of an internal error, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a handler or task can fail with, as its caller should see it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or fails validation; repeating it cannot help.
    #[error("{0}")]
    BadRequest(String),
    /// No or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials valid, access refused.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or is not the caller's to see).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (duplicate email, order already paid).
    #[error("{0}")]
    Conflict(String),
    /// The body is over the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A rate limit refused the request; it may be repeated after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
        /// The limit's size and seconds until it is whole again, for the `RateLimit-Limit`
        /// and `RateLimit-Reset` headers (`RateLimit-Remaining` is 0), when known.
        quota: Option<(u32, u64)>,
    },
    /// A dependency (Redis, the database, the queue, the model) is down or slow. Clients
    /// see which one; the reason (hosts, ARNs) goes only to the log and diagnostics.
    #[error("{component} is unavailable, try again shortly")]
    Unavailable {
        /// Which dependency.
        component: &'static str,
        /// Why, without secrets.
        reason: String,
    },
    /// A bug or an unexpected failure; the cause is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] Cause),
}

impl Error {
    /// An internal error from any cause.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        Self::Internal(cause.into())
    }

    /// The HTTP status a client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether the same request or task can succeed later without a change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Internal(_)
        )
    }

    /// The body clients receive.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }
}

/// `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    /// See [`Error::code`].
    pub code: &'static str,
    /// Human-readable, safe to show.
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            Self::Unavailable { component, reason } => {
                tracing::warn!(component, reason = %reason, "dependency unavailable");
            }
            _ => tracing::debug!(code = self.code(), message = %self, "request refused"),
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Self::RateLimited {
            retry_after_secs,
            quota,
            ..
        } = self
        {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            if let Some((limit, reset_secs)) = quota {
                headers.insert("ratelimit-limit", HeaderValue::from(limit));
                headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
                headers.insert("ratelimit-reset", HeaderValue::from(reset_secs));
            }
        }
        response
    }
}

impl From<&Error> for lambda_runtime::Diagnostic {
    fn from(err: &Error) -> Self {
        // error_type is what CloudWatch groups failures by: the code, and whether a retry helps.
        let retry = if err.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        };
        lambda_runtime::Diagnostic {
            error_type: format!("{retry}.{}", err.code()),
            error_message: match err {
                Error::Internal(cause) => cause.to_string(),
                Error::Unavailable { component, reason } => {
                    format!("{component} is unavailable: {reason}")
                }
                other => other.to_string(),
            },
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        (&err).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn errors_become_json_with_their_status() {
        let response = Error::NotFound("task 42 not found".into()).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let json = body_json(response).await;
        assert_eq!(json["error"]["code"], "not_found");
        assert_eq!(json["error"]["message"], "task 42 not found");
    }

    #[tokio::test]
    async fn internal_detail_stays_out_of_the_response() {
        let response =
            Error::internal(std::io::Error::other("password=hunter2 leaked")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let json = body_json(response).await;
        assert_eq!(json["error"]["message"], "internal error");
    }

    #[tokio::test]
    async fn rate_limited_carries_retry_after() {
        let response = Error::RateLimited {
            message: "too many login attempts".into(),
            retry_after_secs: 17,
            quota: Some((3, 60)),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "17");
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], "0");
        assert_eq!(response.headers()["ratelimit-reset"], "60");
    }

    #[tokio::test]
    async fn an_outage_names_the_component_but_not_its_address() {
        let err = Error::Unavailable {
            component: "redis",
            reason: "connection refused to cache.internal.example:6379".into(),
        };
        let d: lambda_runtime::Diagnostic = (&err).into();
        assert!(d.error_message.contains("cache.internal.example"));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let json = body_json(response).await;
        assert_eq!(
            json["error"]["message"],
            "redis is unavailable, try again shortly"
        );
    }

    #[test]
    fn diagnostics_say_whether_a_retry_helps() {
        let d: lambda_runtime::Diagnostic = Error::Unavailable {
            component: "redis",
            reason: "connection refused".into(),
        }
        .into();
        assert_eq!(d.error_type, "Retryable.unavailable");
        let d: lambda_runtime::Diagnostic = Error::BadRequest("no task name".into()).into();
        assert_eq!(d.error_type, "Permanent.bad_request");
    }
}
