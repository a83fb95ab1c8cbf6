//! The SQS transport.

use async_trait::async_trait;
use aws_sdk_sqs::types::QueueAttributeName;
use celeriac_platform::health::{Probe, ProbeError};

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
            .map_err(|e| ProbeError(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}
