//! The Amazon SES v2 adapter. It sends the same MIME message the SMTP adapter sends, as
//! raw content, so both parts and the headers travel exactly as built (SES's "simple"
//! content cannot carry our `Message-ID`, and stand-ins keep only one of its parts). SES
//! replaces the `Message-ID` with its own on the way out; [`Sent::provider_id`] holds it.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use lettre::message::Mailbox;

use crate::error::{MailError, without_addresses};
use crate::mailer::{Mailer, Sent};
use crate::message::Message;

/// Sends through SES v2 `SendEmail`.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: Mailbox,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// A client built from the shared SDK configuration (which honours
    /// `AWS_ENDPOINT_URL_SESV2`), sending as `from`, an identity verified in SES.
    pub fn new(sdk: &aws_config::SdkConfig, from: Mailbox) -> Self {
        Self {
            client: aws_sdk_sesv2::Client::new(sdk),
            from,
            configuration_set: None,
        }
    }

    /// Sends through `configuration_set`, for its bounce and delivery events.
    pub fn with_configuration_set(mut self, configuration_set: Option<String>) -> Self {
        self.configuration_set = configuration_set;
        self
    }
}

/// Throttling, quotas, a paused account's sending and any 5xx or network failure can pass;
/// a rejected message, an unverified sender or a suspended account will not.
fn classify(err: SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse>) -> MailError {
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => match service.err() {
            SendEmailError::TooManyRequestsException(_)
            | SendEmailError::LimitExceededException(_)
            | SendEmailError::SendingPausedException(_) => true,
            SendEmailError::AccountSuspendedException(_)
            | SendEmailError::BadRequestException(_)
            | SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::MessageRejected(_)
            | SendEmailError::NotFoundException(_) => false,
            _ => {
                let status = service.raw().status();
                status.is_server_error() || status.as_u16() == 429
            }
        },
        _ => false,
    };
    let text = without_addresses(&DisplayErrorContext(err).to_string());
    if retryable {
        MailError::Unavailable(text)
    } else {
        MailError::Rejected(text)
    }
}

#[async_trait]
impl Mailer for SesMailer {
    fn adapter(&self) -> &'static str {
        "ses"
    }

    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let mime = message.to_mime(&self.from)?;
        let message_id = message.message_id(&self.from);
        let raw = RawMessage::builder()
            .data(Blob::new(mime.formatted()))
            .build()
            .map_err(|e| MailError::Invalid(format!("raw message: {e}")))?;
        let result = self
            .client
            .send_email()
            .from_email_address(self.from.to_string())
            .destination(
                Destination::builder()
                    .to_addresses(message.to().to_owned())
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match result {
            Ok(output) => {
                let provider_id = output.message_id().map(str::to_owned);
                tracing::info!(message_id = %message_id, ses_message_id = provider_id.as_deref().unwrap_or(""), "email sent through SES");
                Ok(Sent {
                    message_id,
                    provider_id,
                })
            }
            Err(err) => {
                let err = classify(err);
                tracing::warn!(message_id = %message_id, error = %err, retryable = err.is_retryable(), "SES send failed");
                Err(err)
            }
        }
    }
}
