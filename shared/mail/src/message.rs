//! One email: a recipient, a subject, an HTML part and a text part, checked when built so
//! that every adapter receives a message it can send.

use lettre::Address;
use lettre::message::{Mailbox, MultiPart};

use crate::error::MailError;

/// A message ready to send. The sender is the mailer's (`MAIL_FROM`), not the message's.
#[derive(Clone)]
pub struct Message {
    to: Address,
    subject: String,
    html: String,
    text: String,
    id: String,
}

impl std::fmt::Debug for Message {
    // Recipients and bodies are customer data: a logged message shows only its id.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Message {
    /// A message to `to` (a bare address, `user@example.com`) with both parts. Its id, the
    /// local part of its `Message-ID`, is random until [`Message::with_id`] sets it.
    pub fn new(
        to: &str,
        subject: impl Into<String>,
        html: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, MailError> {
        let to = parse_recipient(to)?;
        let subject = subject.into();
        if subject.trim().is_empty() {
            return Err(MailError::Invalid("subject is empty".into()));
        }
        if subject.chars().any(char::is_control) {
            return Err(MailError::Invalid(
                "subject contains control characters (line breaks or tabs)".into(),
            ));
        }
        Ok(Self {
            to,
            subject,
            html: html.into(),
            text: text.into(),
            id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Sets the id its `Message-ID` is made from (`<id@sender-domain>`). The `send_email`
    /// task uses its task id, so every copy of one task's email carries the same
    /// `Message-ID`. Characters a `Message-ID` cannot hold become `-`.
    pub fn with_id(mut self, id: &str) -> Self {
        let id: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if !id.trim_matches('.').is_empty() {
            self.id = id.trim_matches('.').to_owned();
        }
        self
    }

    /// The recipient's address.
    pub fn to(&self) -> &str {
        self.to.as_ref()
    }

    /// The subject line.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The HTML part.
    pub fn html(&self) -> &str {
        &self.html
    }

    /// The plain-text part.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The id its `Message-ID` is made from.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `Message-ID` header it gets when sent as `from`.
    pub fn message_id(&self, from: &Mailbox) -> String {
        format!("<{}@{}>", self.id, from.email.domain())
    }

    /// The MIME message (multipart/alternative, text then HTML) sent as `from`.
    pub(crate) fn to_mime(&self, from: &Mailbox) -> Result<lettre::Message, MailError> {
        lettre::Message::builder()
            .from(from.clone())
            .to(Mailbox::new(None, self.to.clone()))
            .subject(self.subject.clone())
            .message_id(Some(self.message_id(from)))
            .date_now()
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| MailError::Invalid(format!("message cannot be built: {e}")))
    }
}

/// The one check of an address mail is sent to: a bare address (`user@example.com`,
/// surrounding whitespace aside) as lettre parses it. Whoever stores an address to mail
/// later (the shop's registration) checks it here, so every stored address can be sent to.
pub fn parse_recipient(raw: &str) -> Result<Address, MailError> {
    raw.trim()
        .parse()
        .map_err(|e| MailError::Invalid(format!("recipient is not an email address: {e}")))
}

/// Parses a sender such as `LocalTea <no-reply@localtea.example>`.
pub fn parse_mailbox(value: &str) -> Result<Mailbox, String> {
    value.trim().parse::<Mailbox>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_recipients_and_subjects_are_invalid() {
        for to in [
            "",
            "bob",
            "bob@",
            "bob@example.com\r\nBcc: eve@example.com",
            "<script>alert(1)</script>@x.example",
        ] {
            let err = Message::new(to, "s", "h", "t").expect_err(to);
            assert!(matches!(err, MailError::Invalid(_)), "{to}: {err:?}");
        }
        for subject in ["", "  ", "a\r\nBcc: eve@example.com"] {
            let err = Message::new("bob@example.com", subject, "h", "t").expect_err(subject);
            assert!(matches!(err, MailError::Invalid(_)), "{subject:?}: {err:?}");
        }
    }

    #[test]
    fn message_id_comes_from_the_id_and_the_sender_domain() {
        let from = parse_mailbox("Shop <no-reply@shop.example>").expect("mailbox");
        let message = Message::new(" bob@example.com ", "Hi", "<p>hi</p>", "hi")
            .expect("valid")
            .with_id("6f1c/2 x");
        assert_eq!(message.to(), "bob@example.com");
        assert_eq!(message.message_id(&from), "<6f1c-2-x@shop.example>");
        let mime =
            String::from_utf8(message.to_mime(&from).expect("mime").formatted()).expect("utf-8");
        assert!(
            mime.contains("Message-ID: <6f1c-2-x@shop.example>"),
            "{mime}"
        );
        assert!(mime.contains("multipart/alternative"), "{mime}");
    }

    #[test]
    fn debug_shows_no_customer_data() {
        let message =
            Message::new("bob@example.com", "Secret subject", "<p>x</p>", "x").expect("valid");
        let printed = format!("{message:?}");
        assert!(!printed.contains("bob@example.com") && !printed.contains("Secret"));
    }
}
