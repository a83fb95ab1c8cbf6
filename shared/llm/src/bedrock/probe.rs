//! Health probe for the model, and the record of the adapter's last call it reads first.
//!
//! # Why the probe rarely calls the model
//! A one-token Converse call is the only check that proves model access, region and
//! quota together, but each one spends the account's quota, and `GET /api/health/` is
//! public. So the probe trusts what the adapter saw: every real call records how it ended
//! ([`LastCall`]), and while that record is younger than the probe's interval (5 min by
//! default) it is the answer, with no call at all. Only when the adapter has not called the
//! model for that long (always the case in the health Lambda, which serves no model
//! traffic of its own) does the probe make its one-token call, and records it the same way,
//! so the next one comes an interval later at the earliest. With the health check's own
//! single flight, that is one model call per interval per execution environment, however
//! many requests arrive. A real call that failed for its own input (a validation error)
//! still proves the model reachable, and counts as healthy.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use celeriac_platform::health::{ErrorKind, Probe, ProbeError};

/// How the adapter's last model attempt ended, as health sees it.
#[derive(Debug, Default)]
pub(crate) struct LastCall(Mutex<Option<(Instant, Result<(), ProbeError>)>>);

impl LastCall {
    /// Records a successful answer.
    pub(crate) fn answered(&self) {
        self.set(Ok(()));
    }

    /// Records a failed attempt of a real call: one the model refused for its own input
    /// still shows the model reachable.
    pub(crate) fn failed(&self, err: &SdkError<ConverseError, HttpResponse>) {
        self.set(match health_kind(err) {
            Some(kind) => Err(ProbeError::new(kind, DisplayErrorContext(err).to_string())),
            None => Ok(()),
        });
    }

    fn set(&self, outcome: Result<(), ProbeError>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), outcome));
    }

    /// The last outcome, if it is younger than `age`.
    fn within(&self, age: Duration) -> Option<Result<(), ProbeError>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < age)
            .map(|(_, outcome)| outcome.clone())
    }
}

/// What a failed attempt says about the model's health; `None` when the service answered
/// and refused only this request.
fn health_kind(err: &SdkError<ConverseError, HttpResponse>) -> Option<ErrorKind> {
    match err {
        SdkError::TimeoutError(_) => Some(ErrorKind::Timeout),
        SdkError::DispatchFailure(d) if d.is_timeout() => Some(ErrorKind::Timeout),
        SdkError::DispatchFailure(d) if d.is_io() => Some(ErrorKind::Refused),
        SdkError::ServiceError(service) => match service.err() {
            ConverseError::ThrottlingException(_) => Some(ErrorKind::Throttled),
            ConverseError::AccessDeniedException(_) => Some(ErrorKind::Auth),
            ConverseError::ResourceNotFoundException(_) => Some(ErrorKind::NotFound),
            ConverseError::ValidationException(_) => None,
            ConverseError::ServiceUnavailableException(_)
            | ConverseError::ModelNotReadyException(_)
            | ConverseError::InternalServerException(_)
            | ConverseError::ModelTimeoutException(_)
            | ConverseError::ModelErrorException(_) => Some(ErrorKind::Unavailable),
            _ => match service.raw().status().as_u16() {
                429 => Some(ErrorKind::Throttled),
                401 | 403 => Some(ErrorKind::Auth),
                404 => Some(ErrorKind::NotFound),
                500..=599 => Some(ErrorKind::Unavailable),
                _ => None,
            },
        },
        SdkError::ConstructionFailure(_) => None,
        _ => Some(ErrorKind::Unavailable),
    }
}

/// Health probe for the model: the adapter's last outcome while recent, else a one-token
/// Converse call (see the module documentation).
#[derive(Debug, Clone)]
pub struct BedrockProbe {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
    last_call: Arc<LastCall>,
    interval: Duration,
}

impl BedrockProbe {
    /// A probe for `model_id` through `client` (the adapter's, see
    /// [`BedrockLlm::probe`](super::BedrockLlm::probe)), trusting `last_call` for
    /// `interval` before it calls the model itself.
    pub(crate) fn new(
        client: aws_sdk_bedrockruntime::Client,
        model_id: String,
        last_call: Arc<LastCall>,
        interval: Duration,
    ) -> Self {
        Self {
            client,
            model_id,
            last_call,
            interval,
        }
    }
}

#[async_trait]
impl Probe for BedrockProbe {
    fn adapter(&self) -> &'static str {
        "bedrock"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        if let Some(outcome) = self.last_call.within(self.interval) {
            return outcome;
        }
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text("ping".into()))
            .build()
            .map_err(|e| ProbeError::new(ErrorKind::Unavailable, e.to_string()))?;
        let sent = self
            .client
            .converse()
            .model_id(&self.model_id)
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(1).build())
            .send()
            .await;
        let outcome = sent.map(|_| ()).map_err(|e| {
            // The probe's own request is minimal: refused, it says the configured model
            // cannot be used (an invalid model id is a validation error, too).
            let kind = health_kind(&e).unwrap_or(ErrorKind::Unavailable);
            ProbeError::new(kind, DisplayErrorContext(e).to_string())
        });
        self.last_call.set(outcome.clone());
        outcome
    }
}
