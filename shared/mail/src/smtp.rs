//! The SMTP adapter (lettre over tokio and rustls): implicit TLS (465), required
//! STARTTLS, or plain for local sinks. One connection per message: a Lambda sends one or two
//! messages per invocation and is frozen in between, where a pooled connection would go
//! stale.

use async_trait::async_trait;
use celeriac_platform::config::ConfigError;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpConfig, SmtpSecurity};
use crate::error::{MailError, without_addresses};
use crate::mailer::{Mailer, Sent};
use crate::message::Message;

/// Sends through an SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    relay: String,
    security: SmtpSecurity,
}

impl std::fmt::Debug for SmtpMailer {
    // The transport holds the credentials: show only where it sends.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("relay", &self.relay)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for the relay in `config`, sending as `from`. Nothing connects until the
    /// first send; a CA file that cannot be read or parsed fails here.
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Self, ConfigError> {
        let tls = match config.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(config)?),
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(config)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            relay: format!("{}:{}", config.host, config.port),
            security: config.security,
        })
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, ConfigError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| ConfigError {
            key: "SMTP_CA_FILE",
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|e| ConfigError {
            key: "SMTP_CA_FILE",
            reason: format!("{} holds no usable PEM certificate: {e}", path.display()),
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| ConfigError {
        key: "SMTP_HOST",
        reason: format!("TLS settings for {} are unusable: {e}", config.host),
    })
}

/// 4xx replies, timeouts and network or TLS failures can pass; a 5xx reply or a client-side
/// refusal (the relay offers no STARTTLS, no usable AUTH mechanism) will not. A TLS failure
/// counts as passing because most are cut connections; a bad certificate retries a few
/// times and then lands in the dead-letter queue all the same.
fn classify(err: &lettre::transport::smtp::Error) -> MailError {
    let text = without_addresses(&err.to_string());
    if err.is_permanent() || err.is_client() {
        MailError::Rejected(text)
    } else {
        MailError::Unavailable(text)
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn adapter(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let mime = message.to_mime(&self.from)?;
        let message_id = message.message_id(&self.from);
        match self.transport.send(mime).await {
            Ok(response) => {
                tracing::info!(relay = %self.relay, message_id = %message_id, code = %response.code(), "email sent over SMTP");
                Ok(Sent {
                    message_id,
                    provider_id: None,
                })
            }
            Err(err) => {
                let err = classify(&err);
                tracing::warn!(relay = %self.relay, message_id = %message_id, error = %err, retryable = err.is_retryable(), "SMTP send failed");
                Err(err)
            }
        }
    }
}
