//! The SQS transport, and the queue-triggered Lambda handler that runs its messages.
//!
//! Queues are named `{TASK_QUEUE_PREFIX}{queue}` (the template prefixes them with the stack
//! name) with a dead-letter queue `{name}-dlq`; URLs are looked up once per name.
//!
//! - Countdowns up to 15 minutes travel as `DelaySeconds`. Longer ETAs use a re-delay
//!   loop: the message is sent with the 15-minute maximum, and whoever receives it early
//!   sends it again for the rest ([`crate::Outcome::Defer`]) and deletes the early copy.
//!   Chosen over EventBridge one-time schedules because it needs no scheduler role, no
//!   schedule clean-up and no second service in the enqueue path; it costs one extra
//!   receive per 15 minutes of wait, and ETAs are bounded by the queue's retention.
//! - A failed attempt sets the message's visibility to its backoff and is reported as a
//!   batch item failure; attempts come from `ApproximateReceiveCount`; after the last
//!   retry the handler sends it to the DLQ itself, and the redrive policy
//!   (`maxReceiveCount` = retries + 1) is the net for crashes and timeouts.
//! - A message that is not an envelope goes to the DLQ at once, alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use celeriac_platform::health::{ErrorKind, Probe, ProbeError};

use crate::runner::{Outcome, Runner};
use crate::transport::{Delivery, Transport, TransportError};

/// SQS caps `DelaySeconds` at 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS caps a visibility timeout at 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// Message attribute carrying why a message was dead-lettered.
pub const DEAD_REASON_ATTRIBUTE: &str = "celeriac-dead-reason";

fn sdk_error<E: std::error::Error + 'static>(
    err: SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> TransportError {
    let retryable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || err
        .raw_response()
        .is_some_and(|r| r.status().is_server_error() || r.status().as_u16() == 429);
    let text = DisplayErrorContext(err).to_string();
    if retryable || text.contains("Throttl") || text.contains("RequestThrottled") {
        TransportError::Unavailable(text)
    } else {
        TransportError::Rejected(text)
    }
}

/// The SQS adapter of [`Transport`].
#[derive(Debug)]
pub struct SqsTransport {
    client: aws_sdk_sqs::Client,
    prefix: String,
    urls: Mutex<HashMap<String, String>>,
}

impl SqsTransport {
    /// Queues named `{prefix}{queue}`, reached through a client built from `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            prefix: prefix.into(),
            urls: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The URL of the queue with physical name `name`.
    async fn url_of(&self, name: &str) -> Result<String, TransportError> {
        if let Some(url) = self.cached(name) {
            return Ok(url);
        }
        let url = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(sdk_error)?
            .queue_url
            .ok_or_else(|| TransportError::Rejected(format!("queue {name} has no URL")))?;
        self.urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), url.clone());
        Ok(url)
    }

    /// The URL of logical queue `queue`.
    pub async fn queue_url(&self, queue: &str) -> Result<String, TransportError> {
        self.url_of(&format!("{}{queue}", self.prefix)).await
    }

    async fn send_to_url(
        &self,
        url: &str,
        body: &str,
        delay: Duration,
    ) -> Result<(), TransportError> {
        // Whole seconds, rounded up: a task must never run before its countdown.
        let delay = i32::try_from(delay.min(MAX_DELAY).as_millis().div_ceil(1000)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    async fn dead_letter_by_name(
        &self,
        physical: &str,
        body: &str,
        reason: &str,
    ) -> Result<(), TransportError> {
        let dlq = self.url_of(&format!("{physical}-dlq")).await?;
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason.chars().take(1024).collect::<String>())
            .build()
            .map_err(|e| TransportError::Rejected(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes(DEAD_REASON_ATTRIBUTE, reason)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    async fn delete(&self, url: &str, receipt: &str) -> Result<(), TransportError> {
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }

    async fn change_visibility(
        &self,
        url: &str,
        receipt: &str,
        delay: Duration,
    ) -> Result<(), TransportError> {
        let secs =
            i32::try_from(delay.min(MAX_VISIBILITY).as_millis().div_ceil(1000)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_error)
    }
}

#[async_trait]
impl Transport for SqsTransport {
    fn adapter(&self) -> &'static str {
        "sqs"
    }

    async fn send(
        &self,
        queue: &str,
        body: &str,
        _priority: Option<u8>,
        delay: Duration,
    ) -> Result<(), TransportError> {
        // SQS has no per-message priority: priorities are separate queues
        // (`{queue}-high`, `{queue}-low`) chosen by the producer.
        let url = self.queue_url(queue).await?;
        self.send_to_url(&url, body, delay).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        let url = self.queue_url(queue).await?;
        let out = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Delivery {
                queue: queue.to_owned(),
                delivery: m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                body: m.body.unwrap_or_default().into_bytes(),
                receipt: m.receipt_handle.unwrap_or_default(),
            })
            .collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), TransportError> {
        let url = self.queue_url(&delivery.queue).await?;
        self.delete(&url, &delivery.receipt).await
    }

    async fn retry(&self, delivery: &Delivery, delay: Duration) -> Result<(), TransportError> {
        let url = self.queue_url(&delivery.queue).await?;
        self.change_visibility(&url, &delivery.receipt, delay).await
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), TransportError> {
        let physical = format!("{}{}", self.prefix, delivery.queue);
        self.dead_letter_by_name(&physical, &String::from_utf8_lossy(&delivery.body), reason)
            .await?;
        self.ack(delivery).await
    }
}

/// Runs one SQS batch from a Lambda event source mapping: every message concurrently, one
/// span each, and the ids of the messages to deliver again as batch item failures.
pub async fn handle_batch(
    runner: &Runner,
    sqs: &SqsTransport,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let outcomes = futures::future::join_all(
        event
            .records
            .into_iter()
            .map(|m| handle_message(runner, sqs, m, deadline)),
    )
    .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcomes
        .into_iter()
        .flatten()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Returns the message id when the message must be delivered again.
async fn handle_message(
    runner: &Runner,
    sqs: &SqsTransport,
    message: SqsMessage,
    deadline: Option<Instant>,
) -> Option<String> {
    let id = message.message_id.clone().unwrap_or_default();
    let receipt = message.receipt_handle.clone().unwrap_or_default();
    let body = message.body.clone().unwrap_or_default();
    let delivery: u32 = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    // arn:aws:sqs:<region>:<account>:<name>
    let physical = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("sqs_message", message_id = %id, queue = %physical, delivery);
    let outcome = tracing::Instrument::instrument(
        runner.execute(body.as_bytes(), delivery, deadline),
        span.clone(),
    )
    .await;
    let settle = async {
        match &outcome {
            Outcome::Ack => Ok::<bool, TransportError>(true),
            Outcome::Retry(delay) => {
                let url = sqs.url_of(&physical).await?;
                sqs.change_visibility(&url, &receipt, *delay).await?;
                Ok(false)
            }
            Outcome::Defer { delay, .. } => {
                let url = sqs.url_of(&physical).await?;
                sqs.send_to_url(&url, &body, *delay).await?;
                Ok(true)
            }
            Outcome::Dead(reason) => {
                sqs.dead_letter_by_name(&physical, &body, reason).await?;
                Ok(true)
            }
        }
    };
    match settle.await {
        Ok(true) => None,
        Ok(false) => Some(id),
        Err(err) => {
            // Reported as failed: it comes back after its visibility timeout, and the
            // redrive policy still moves it to the DLQ in the end. Nothing is lost.
            let _g = span.enter();
            tracing::warn!(error = %err, ?outcome, "could not settle the message; SQS will deliver it again");
            Some(id)
        }
    }
}

/// Health probe: the queue exists and this function may read its attributes.
#[derive(Debug, Clone)]
pub struct SqsProbe {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsProbe {
    /// A probe for `queue_url` through a client built from `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: String) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            queue_url,
        }
    }
}

#[async_trait]
impl Probe for SqsProbe {
    fn adapter(&self) -> &'static str {
        "sqs"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let kind = match &e {
                    SdkError::TimeoutError(_) => ErrorKind::Timeout,
                    SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::Timeout,
                    SdkError::DispatchFailure(d) if d.is_io() => ErrorKind::Refused,
                    other => other
                        .as_service_error()
                        .and_then(ProvideErrorMetadata::code)
                        .map_or(ErrorKind::Unavailable, ErrorKind::from_aws_code),
                };
                ProbeError::new(kind, DisplayErrorContext(e).to_string())
            })
    }
}
