//! Mail for celeriac: the [`Mailer`] port and its adapters, the shop's email templates, and
//! the `send_email` task.
//!
//! - [`mailer`]: the port, and [`mailer::open`] that builds the configured adapter.
//! - [`outbox`] (the embedded default: JSON files in a directory), [`smtp`] (lettre,
//!   implicit TLS, STARTTLS or plain), [`ses`] (Amazon SES v2).
//! - [`config`]: [`MailConfig`], read once from the environment.
//! - [`message`]: one checked message; [`templates`]: Jinja2-compatible templates embedded
//!   in the binary; [`html_text`]: the text part of an HTML-only email.
//! - [`task`]: `send_email(email_to, subject, body | template_name + environment)`.
//! - [`error`]: [`MailError`], which says whether a retry can help.

pub mod config;
pub mod error;
pub mod html_text;
pub mod mailer;
pub mod message;
pub mod outbox;
pub mod ses;
pub mod smtp;
pub mod task;
pub mod templates;

pub use config::{MailConfig, MailProvider, SmtpConfig, SmtpSecurity};
pub use error::MailError;
pub use mailer::{Mailer, Sent, SharedMailer, open};
pub use message::{Message, parse_recipient};
pub use outbox::{OutboxEntry, OutboxMailer};
pub use ses::SesMailer;
pub use smtp::SmtpMailer;
pub use task::{SPEC, SendEmail, SendEmailArgs, SentEmail, enqueue};
pub use templates::{Rendered, Templates};
