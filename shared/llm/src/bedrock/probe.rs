//! Health probe: the configured model answers a one-token Converse call.

use async_trait::async_trait;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, Message,
};
use celeriac_platform::health::{Probe, ProbeError};

/// Health probe: the model answers a one-token Converse call (the cheapest call that
/// proves model access, region and quota together).
#[derive(Debug, Clone)]
pub struct BedrockProbe {
    client: aws_sdk_bedrockruntime::Client,
    model_id: String,
}

impl BedrockProbe {
    /// A probe for `model_id` through `client` (the adapter's, see
    /// [`BedrockLlm::probe`](super::BedrockLlm::probe)).
    pub fn new(client: aws_sdk_bedrockruntime::Client, model_id: String) -> Self {
        Self { client, model_id }
    }
}

#[async_trait]
impl Probe for BedrockProbe {
    fn adapter(&self) -> &'static str {
        "bedrock"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text("ping".into()))
            .build()
            .map_err(|e| ProbeError(e.to_string()))?;
        self.client
            .converse()
            .model_id(&self.model_id)
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(1).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                ProbeError(aws_sdk_bedrockruntime::error::DisplayErrorContext(e).to_string())
            })
    }
}
