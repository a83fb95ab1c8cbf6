//! The shop's `send_email` task, as the seed declares it:
//! `send_email(email_to, subject, body | template_name + environment)`.
//!
//! Producers (the accounts handlers) need no mailer: they enqueue with [`SPEC`] and
//! [`SendEmailArgs`] through [`enqueue`]. The function that runs the task builds
//! [`SendEmail`] once per execution environment ([`SendEmail::from_env`]) and registers it.
//!
//! # Sent once when delivered twice
//! Nothing beyond the task runtime is needed for duplicate deliveries. The runner makes
//! every task idempotent on the envelope's effect key (its idempotency key, else its task
//! id): a copy of a task that already succeeded is acknowledged from its record without
//! running, and a copy arriving while another runs is deferred. So a duplicate SQS or
//! stream delivery sends nothing (`tests/send_email.rs` checks both cases against the SMTP
//! sink).
//!
//! One window remains, inherent to SMTP and SES: the provider accepted the message and the
//! worker died before recording success. Its claim then lapses and the retry sends a second
//! copy. Over SMTP that copy carries the same `Message-ID` (`<task-id@sender-domain>`), so
//! it is recognisably the same message (Gmail, for one, drops a message whose `Message-ID`
//! it already holds); SES assigns its own ids, so there the copy is a plain duplicate.
//! Closing the window entirely would need the provider to deduplicate, which neither does.
//!
//! A producer that might enqueue the same email twice (an HTTP request retried by its
//! client) passes an idempotency key in [`SendOptions`], e.g.
//! `confirm-email:{user_id}:{token_id}`, so both tasks share one effect.

use std::sync::Arc;

use async_trait::async_trait;
use celeriac_platform::config::ConfigError;
use celeriac_tasks::{SendOptions, Task, TaskClient, TaskContext, TaskError, TaskSpec};
use serde::{Deserialize, Serialize};

use crate::config::MailConfig;
use crate::error::MailError;
use crate::html_text::text_from_html;
use crate::mailer::{SharedMailer, open};
use crate::message::Message;
use crate::templates::{
    ACCOUNT_EXISTS, EMAIL_CHANGE_CONFIRMATION, PASSWORD_RESET, REGISTRATION_CONFIRMATION, Templates,
};

/// `send_email` on the default queue (`celery`, as in the seed), with Celery's default
/// retries: 3 more attempts, 1 s to 600 s full-jitter backoff; then the dead-letter queue.
/// One attempt is bounded by 60 s, several SMTP timeouts.
pub const SPEC: TaskSpec =
    TaskSpec::new("send_email").time_limit(std::time::Duration::from_secs(60));

/// Arguments of `send_email`, named as the seed's keyword arguments. Give `body` (HTML, or
/// plain text when it holds no tags) or `template_name` with `environment`, not both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmailArgs {
    /// Recipient address.
    pub email_to: String,
    /// Subject line.
    pub subject: String,
    /// A ready body, when no template is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Template to render, e.g. `registration_confirmation.html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// The template's variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<serde_json::Map<String, serde_json::Value>>,
}

impl SendEmailArgs {
    /// An email rendered from `template_name` with `environment`.
    pub fn template(
        email_to: impl Into<String>,
        subject: impl Into<String>,
        template_name: impl Into<String>,
        environment: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self {
            email_to: email_to.into(),
            subject: subject.into(),
            body: None,
            template_name: Some(template_name.into()),
            environment: Some(environment),
        }
    }

    /// The registration confirmation, with the link that confirms the address. Add
    /// `username`, `project_name` or `valid_hours` to `environment` as needed.
    pub fn registration_confirmation(email_to: impl Into<String>, link: impl Into<String>) -> Self {
        let email_to = email_to.into();
        let mut environment = serde_json::Map::new();
        environment.insert("link".into(), link.into().into());
        environment.insert("email".into(), email_to.clone().into());
        Self::template(
            email_to,
            "Confirm your registration",
            REGISTRATION_CONFIRMATION,
            environment,
        )
    }

    /// The confirmation sent to the new address of an email change.
    pub fn email_change_confirmation(
        new_email: impl Into<String>,
        link: impl Into<String>,
    ) -> Self {
        let new_email = new_email.into();
        let mut environment = serde_json::Map::new();
        environment.insert("link".into(), link.into().into());
        environment.insert("new_email".into(), new_email.clone().into());
        Self::template(
            new_email,
            "Confirm your new email address",
            EMAIL_CHANGE_CONFIRMATION,
            environment,
        )
    }

    /// The password reset mail, with the link to the page that sets a new password. Add
    /// `username` or `valid_minutes` as needed.
    pub fn password_reset(email_to: impl Into<String>, link: impl Into<String>) -> Self {
        let email_to = email_to.into();
        let mut environment = serde_json::Map::new();
        environment.insert("link".into(), link.into().into());
        environment.insert("email".into(), email_to.clone().into());
        Self::template(email_to, "Reset your password", PASSWORD_RESET, environment)
    }

    /// The notice to the owner of an address someone tried to register again (instead of
    /// telling that someone the address has an account).
    pub fn account_exists(email_to: impl Into<String>) -> Self {
        let email_to = email_to.into();
        let mut environment = serde_json::Map::new();
        environment.insert("email".into(), email_to.clone().into());
        Self::template(
            email_to,
            "Someone tried to register with your address",
            ACCOUNT_EXISTS,
            environment,
        )
    }

    /// Sets one template variable.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.environment
            .get_or_insert_with(serde_json::Map::new)
            .insert(name.to_owned(), value.into());
        self
    }

    /// The message these arguments describe, rendered with `templates`. Every failure is
    /// [`MailError::Invalid`]: no later attempt can fix the arguments.
    pub fn to_message(&self, templates: &Templates) -> Result<Message, MailError> {
        let body = self.body.as_deref().filter(|b| !b.trim().is_empty());
        let (html, text) = match (body, self.template_name.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(MailError::Invalid(
                    "give body or template_name, not both".into(),
                ));
            }
            (None, None) => {
                return Err(MailError::Invalid("give body or template_name".into()));
            }
            (Some(body), None) if looks_like_html(body) => (body.to_owned(), text_from_html(body)),
            (Some(body), None) => (html_from_text(body), body.to_owned()),
            (None, Some(name)) => {
                let empty = serde_json::Map::new();
                let rendered =
                    templates.render(name, self.environment.as_ref().unwrap_or(&empty))?;
                (rendered.html, rendered.text)
            }
        };
        Message::new(&self.email_to, self.subject.clone(), html, text)
    }
}

fn looks_like_html(body: &str) -> bool {
    let mut rest = body;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!')
            && rest.contains('>')
        {
            return true;
        }
    }
    false
}

/// A plain-text body as HTML: escaped, paragraphs kept, line breaks as `<br>`.
fn html_from_text(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let paragraphs: Vec<String> = escaped
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n")))
        .collect();
    paragraphs.join("\n")
}

/// What `send_email` stores as its result. No recipient: results are readable through the
/// task status endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEmail {
    /// The `Message-ID` it was sent with.
    pub message_id: String,
    /// The adapter that took it (`smtp`, `ses`, `outbox`).
    pub via: String,
    /// The provider's id (SES's MessageId, the outbox file), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}

/// The `send_email` task: renders, then sends through its mailer.
#[derive(Debug, Clone)]
pub struct SendEmail {
    mailer: SharedMailer,
    templates: Arc<Templates>,
}

impl SendEmail {
    /// A task sending through `mailer` with `templates`.
    pub fn new(mailer: SharedMailer, templates: Arc<Templates>) -> Self {
        Self { mailer, templates }
    }

    /// Reads [`MailConfig`] from the environment and builds the mailer and templates it
    /// names; call once per execution environment.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::from_config(&MailConfig::from_env()?).await
    }

    /// Builds the mailer and templates `config` names.
    pub async fn from_config(config: &MailConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            open(config).await?,
            Arc::new(Templates::new(config.templates_dir.clone())),
        ))
    }
}

#[async_trait]
impl Task for SendEmail {
    type Args = SendEmailArgs;
    type Output = SentEmail;

    fn spec(&self) -> TaskSpec {
        SPEC
    }

    async fn run(&self, args: SendEmailArgs, ctx: &TaskContext) -> Result<SentEmail, TaskError> {
        let message = args.to_message(&self.templates)?.with_id(&ctx.task_id);
        let sent = self.mailer.send(&message).await?;
        Ok(SentEmail {
            message_id: sent.message_id,
            via: self.mailer.adapter().to_owned(),
            provider_id: sent.provider_id,
        })
    }
}

/// Enqueues `send_email` (Celery's `send_email.apply_async(kwargs=...)`); returns the task
/// id. Nothing is rendered or checked here: bad arguments fail the task, not the request.
pub async fn enqueue(
    client: &TaskClient,
    args: &SendEmailArgs,
    options: SendOptions,
) -> Result<String, TaskError> {
    let args = serde_json::to_value(args).map_err(|e| TaskError::Permanent(e.to_string()))?;
    client.send(&SPEC, args, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_or_template_not_both_nor_neither() {
        let templates = Templates::default();
        let mut args = SendEmailArgs::registration_confirmation("bob@example.com", "https://x/c");
        args.body = Some("<p>hi</p>".into());
        assert!(matches!(
            args.to_message(&templates),
            Err(MailError::Invalid(_))
        ));
        args.template_name = None;
        args.body = Some("  ".into());
        assert!(matches!(
            args.to_message(&templates),
            Err(MailError::Invalid(_))
        ));
    }

    #[test]
    fn a_plain_body_becomes_both_parts() {
        let templates = Templates::default();
        let args = SendEmailArgs {
            email_to: "bob@example.com".into(),
            subject: "Hi".into(),
            body: Some("Hello Bob,\nyour tea <3 & cake\n\nBye".into()),
            template_name: None,
            environment: None,
        };
        let message = args.to_message(&templates).expect("valid");
        assert_eq!(message.text(), "Hello Bob,\nyour tea <3 & cake\n\nBye");
        assert_eq!(
            message.html(),
            "<p>Hello Bob,<br>\nyour tea &lt;3 &amp; cake</p>\n<p>Bye</p>"
        );

        let args = SendEmailArgs {
            body: Some("<p>Hello <b>Bob</b></p><p><a href=\"https://x/y\">go</a></p>".into()),
            ..args
        };
        let message = args.to_message(&templates).expect("valid");
        assert_eq!(message.text(), "Hello Bob\n\ngo (https://x/y)");
    }

    #[test]
    fn args_use_the_seed_names_and_refuse_unknown_ones() {
        let args: SendEmailArgs = serde_json::from_value(serde_json::json!({
            "email_to": "bob@example.com",
            "subject": "s",
            "template_name": "registration_confirmation.html",
            "environment": {"link": "https://x"}
        }))
        .expect("seed kwargs");
        assert_eq!(
            args.template_name.as_deref(),
            Some(REGISTRATION_CONFIRMATION)
        );
        assert!(
            serde_json::from_value::<SendEmailArgs>(serde_json::json!({
                "email_to": "bob@example.com", "subject": "s", "bdy": "typo"
            }))
            .is_err()
        );
    }
}
