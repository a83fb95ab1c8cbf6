//! The file outbox, the embedded default: each message becomes one JSON file holding its
//! headers and both parts as plain strings, so a developer reads the confirmation link with
//! `cat` or `jq -r .text` (an `.eml` would wrap long links in quoted-printable).
//!
//! Files are named `<UTC time>-<message id>-<random>.json`, so `ls` lists them oldest
//! first, and are written under a temporary name and then renamed, so a reader never sees
//! half a message.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use celeriac_platform::config::ConfigError;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

use crate::error::MailError;
use crate::mailer::{Mailer, Sent};
use crate::message::Message;

/// One message as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The `Message-ID` it would carry over SMTP.
    pub message_id: String,
    /// Sender, as `Name <address>`.
    pub from: String,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
    /// When it was written.
    pub written_at: DateTime<Utc>,
}

/// Writes messages into a directory instead of sending them.
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl OutboxMailer {
    /// An outbox in `dir` (created if missing), sending as `from`.
    pub fn open(dir: impl Into<PathBuf>, from: Mailbox) -> Result<Self, ConfigError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| ConfigError {
            key: "MAIL_OUTBOX_DIR",
            reason: format!("cannot create {}: {e}", dir.display()),
        })?;
        Ok(Self { dir, from })
    }

    /// The directory it writes to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    fn adapter(&self) -> &'static str {
        "outbox"
    }

    async fn send(&self, message: &Message) -> Result<Sent, MailError> {
        let written_at = Utc::now();
        let entry = OutboxEntry {
            message_id: message.message_id(&self.from),
            from: self.from.to_string(),
            to: message.to().to_owned(),
            subject: message.subject().to_owned(),
            text: message.text().to_owned(),
            html: message.html().to_owned(),
            written_at,
        };
        let json = serde_json::to_vec_pretty(&entry)
            .map_err(|e| MailError::Invalid(format!("message not serialisable: {e}")))?;
        let random = uuid::Uuid::new_v4().simple().to_string();
        let name = format!(
            "{}-{}-{}.json",
            written_at.format("%Y%m%dT%H%M%S%.6fZ"),
            message.id(),
            &random[..8]
        );
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let unavailable = |e: std::io::Error| {
            MailError::Unavailable(format!("outbox {}: {e}", self.dir.display()))
        };
        // Recreated on every send, so clearing the outbox by deleting it is harmless.
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(unavailable)?;
        tokio::fs::write(&partial, &json)
            .await
            .map_err(unavailable)?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(unavailable)?;
        tracing::info!(path = %path.display(), message_id = %entry.message_id, "email written to the outbox");
        Ok(Sent {
            message_id: entry.message_id,
            provider_id: Some(name),
        })
    }
}

/// Every message in the outbox at `dir`, oldest first (none if the directory is missing).
pub fn entries(dir: &Path) -> std::io::Result<Vec<OutboxEntry>> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(listing) => listing
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| {
                path.extension().is_some_and(|ext| ext == "json")
                    && !path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path)?;
            serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })
        })
        .collect()
}
