//! The mail port: send one message. Adapters: [`crate::outbox::OutboxMailer`] (the
//! embedded default), [`crate::smtp::SmtpMailer`] and [`crate::ses::SesMailer`]; one
//! conformance suite (`tests/conformance.rs`) runs against all three.

use std::sync::Arc;

use async_trait::async_trait;
use celeriac_platform::config::ConfigError;

use crate::config::{MailConfig, MailProvider};
use crate::error::MailError;
use crate::message::Message;
use crate::outbox::OutboxMailer;
use crate::ses::SesMailer;
use crate::smtp::SmtpMailer;

/// What the provider said when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The `Message-ID` header the message carried.
    pub message_id: String,
    /// The provider's own id for it (SES's MessageId, the outbox's file name), if any.
    pub provider_id: Option<String>,
}

/// Sends one message at a time.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Which adapter this is (`outbox`, `smtp`, `ses`), for logs and health.
    fn adapter(&self) -> &'static str;

    /// Hands `message` to the provider. `Ok` means the provider accepted it; the error says
    /// whether sending it again can help.
    async fn send(&self, message: &Message) -> Result<Sent, MailError>;
}

/// A mailer shared by handlers and tasks.
pub type SharedMailer = Arc<dyn Mailer>;

/// Builds the adapter `config` names. SES loads the shared AWS SDK configuration, so
/// `AWS_ENDPOINT_URL_SESV2` points it at a stand-in.
pub async fn open(config: &MailConfig) -> Result<SharedMailer, ConfigError> {
    let from = config.from.clone();
    let mailer: SharedMailer = match &config.provider {
        MailProvider::Outbox { dir } => Arc::new(OutboxMailer::open(dir, from)?),
        MailProvider::Smtp(smtp) => Arc::new(SmtpMailer::new(smtp, from)?),
        MailProvider::Ses { configuration_set } => {
            let sdk = celeriac_platform::aws::load().await?;
            Arc::new(SesMailer::new(&sdk, from).with_configuration_set(configuration_set.clone()))
        }
    };
    tracing::info!(adapter = mailer.adapter(), "mailer ready");
    Ok(mailer)
}
