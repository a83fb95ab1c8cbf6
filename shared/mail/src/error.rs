//! Why a message was not sent, and whether sending it again can help.

use celeriac_tasks::TaskError;

/// A failed send or a message that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The message itself is unusable: a malformed address, an unknown template, a
    /// template that needs a variable it was not given. Sending it again fails the same way.
    #[error("invalid email: {0}")]
    Invalid(String),
    /// The provider could not be reached, timed out, or refused for now (SMTP 4xx,
    /// throttling, a 5xx from the HTTP API, a full disk). A later attempt can succeed.
    #[error("mail provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused this message for good (SMTP 5xx, an unverified sender, a
    /// rejected recipient).
    #[error("mail provider rejected the message: {0}")]
    Rejected(String),
}

impl MailError {
    /// Whether the same send can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<MailError> for TaskError {
    fn from(err: MailError) -> Self {
        if err.is_retryable() {
            Self::Retryable(err.to_string())
        } else {
            Self::Permanent(err.to_string())
        }
    }
}

/// `text` with every word that looks like an email address replaced by `<address>`.
/// Providers quote recipients in their refusals ("550 5.1.1 <bob@example.com>: no such
/// user"); those texts end up in logs, dead-letter reasons and the public task status.
pub(crate) fn without_addresses(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            if trimmed.contains('@') {
                format!("<address>{}", &word[trimmed.len()..])
            } else {
                word.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_only_when_unavailable() {
        assert!(MailError::Unavailable("x".into()).is_retryable());
        assert!(!MailError::Rejected("x".into()).is_retryable());
        assert!(!MailError::Invalid("x".into()).is_retryable());
        assert!(TaskError::from(MailError::Unavailable("x".into())).is_retryable());
        assert!(!TaskError::from(MailError::Rejected("x".into())).is_retryable());
    }

    #[test]
    fn addresses_are_removed_from_provider_texts() {
        let text = without_addresses("550 5.1.1 <bob@example.com>: Recipient rejected\n(x@y)");
        assert_eq!(text, "550 5.1.1 <address> Recipient rejected\n<address>");
        assert_eq!(without_addresses("timed out"), "timed out");
    }
}
