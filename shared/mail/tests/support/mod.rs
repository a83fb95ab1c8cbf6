//! What the mail tests share: reading back what each sink received (the outbox directory,
//! an aiosmtpd Maildir, moto's record of SES sends), private aiosmtpd servers speaking TLS
//! or refusing recipients, and unique addresses so concurrent runs never see each other's
//! mail in the shared sink.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use celeriac_testkit::{free_port, standin, unique_prefix};
use lettre::message::Mailbox;
use mail_parser::{MessageParser, PartType};

/// A message as its sink holds it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Envelope or header recipients.
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// The text/html part (line ends normalised to `\n`).
    pub html: String,
    /// The text/plain part (likewise).
    pub text: String,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
}

/// An address no other test run uses.
pub fn unique_address(test: &str) -> String {
    let local: String = unique_prefix(test)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{local}@example.com")
}

/// The sender of test mail.
pub fn sender(address: &str) -> Mailbox {
    format!("celeriac tests <{address}>")
        .parse()
        .expect("valid mailbox")
}

fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

/// Decodes a MIME message; panics unless it has exactly one text/plain and one text/html
/// part, as every adapter must send.
pub fn parse_mime(raw: &[u8]) -> Delivered {
    let message = MessageParser::default().parse(raw).expect("a MIME message");
    let mut texts = Vec::new();
    let mut htmls = Vec::new();
    for part in &message.parts {
        match &part.body {
            PartType::Text(text) => texts.push(text.to_string()),
            PartType::Html(html) => htmls.push(html.to_string()),
            _ => {}
        }
    }
    assert_eq!(
        (texts.len(), htmls.len()),
        (1, 1),
        "one text and one HTML part"
    );
    Delivered {
        to: message
            .to()
            .map(|to| {
                to.iter()
                    .filter_map(|a| a.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        subject: message.subject().unwrap_or_default().to_owned(),
        html: normalise(&htmls[0]),
        text: normalise(&texts[0]),
        message_id: message.message_id().unwrap_or_default().to_owned(),
    }
}

/// Messages in the Maildir at `dir` whose SMTP envelope went to `rcpt`.
pub fn maildir_messages(dir: &Path, rcpt: &str) -> Vec<Delivered> {
    let Ok(listing) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in listing.flatten() {
        let Ok(raw) = std::fs::read(entry.path()) else {
            continue;
        };
        let Some(message) = MessageParser::default().parse(&raw) else {
            continue;
        };
        // aiosmtpd's Mailbox handler records the envelope in X-RcptTo.
        let envelope_to = message.header_raw("X-RcptTo").unwrap_or_default();
        if envelope_to.split(',').any(|a| a.trim() == rcpt) {
            let mut delivered = parse_mime(&raw);
            delivered.to = vec![rcpt.to_owned()];
            found.push(delivered);
        }
    }
    found
}

/// Messages moto's SES recorded for `rcpt`, read from its model dump.
pub async fn moto_messages(moto_url: &str, rcpt: &str) -> Vec<(String, Delivered)> {
    let dump: serde_json::Value = reqwest::get(format!("{moto_url}/moto-api/data.json"))
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto's model dump is JSON");
    let Some(sent) = dump["ses"]["RawMessage"].as_array() else {
        return Vec::new();
    };
    sent.iter()
        .filter(|m| {
            m["destinations"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.contains(rcpt)))
            })
        })
        .map(|m| {
            let mut delivered = parse_mime(m["raw_data"].as_str().expect("raw_data").as_bytes());
            delivered.to = vec![rcpt.to_owned()];
            (m["id"].as_str().unwrap_or_default().to_owned(), delivered)
        })
        .collect()
}

/// The SDK pointed at moto, with `identity` verified as an SES sender.
pub async fn moto_with_identity(identity: &str) -> Option<(aws_config::SdkConfig, String)> {
    let sdk = celeriac_testkit::moto_sdk().await?;
    let url = standin("CELERIAC_TEST_MOTO_URL")?;
    aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(identity)
        .send()
        .await
        .expect("moto creates the identity");
    Some((sdk, url))
}

/// The shared SMTP sink: host, port, maildir.
pub fn smtp_sink() -> Option<(String, u16, PathBuf)> {
    let host = standin("CELERIAC_TEST_SMTP_HOST")?;
    let port = standin("CELERIAC_TEST_SMTP_PORT")?
        .parse()
        .expect("numeric port");
    let maildir = PathBuf::from(standin("CELERIAC_TEST_SMTP_MAILDIR")?);
    Some((host, port, maildir))
}

/// How a private aiosmtpd speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnSmtpKind {
    /// SMTPS: TLS from the first byte.
    ImplicitTls,
    /// Plain greeting, STARTTLS required before MAIL.
    StartTls,
    /// Plain; refuses recipients whose local part holds `permanent` (550) or `transient`
    /// (451), and takes the rest without storing them.
    Refusing,
}

/// A private aiosmtpd from the stand-ins' venv, TLS with the stand-ins' certificate
/// (SAN 127.0.0.1, signed by `CELERIAC_TEST_REDIS_TLS_CA`). Killed when dropped.
#[derive(Debug)]
pub struct OwnSmtp {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its Maildir.
    pub maildir: PathBuf,
    /// The CA that signed its certificate.
    pub ca: PathBuf,
}

/// aiosmtpd's `Controller` with a Maildir handler (or a refusing one); prints `ready` once
/// it answers, and exits if it cannot bind.
const SERVER: &str = r#"
import ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

kind, port, maildir, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if "permanent" in local:
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        if "transient" in local:
            return "451 4.3.0 <%s>: Mailbox busy, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

def tls():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context

if kind == "refusing":
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
elif kind == "smtps":
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port, ssl_context=tls())
else:
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port,
                            tls_context=tls(), require_starttls=True)
controller.start()
print("ready", flush=True)
threading.Event().wait()
"#;

impl OwnSmtp {
    /// Starts one; `None` (a skip) when the stand-ins are not set up.
    pub fn start(kind: OwnSmtpKind) -> Option<Self> {
        let venv = PathBuf::from(standin("CELERIAC_VENV")?);
        let ca = PathBuf::from(standin("CELERIAC_TEST_REDIS_TLS_CA")?);
        let tls_dir = ca.parent().expect("CA in a directory").to_path_buf();
        let maildir = std::env::temp_dir().join(format!(
            "celeriac-mail-smtp-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let kind_arg = match kind {
            OwnSmtpKind::ImplicitTls => "smtps",
            OwnSmtpKind::StartTls => "starttls",
            OwnSmtpKind::Refusing => "refusing",
        };
        // A free port can be taken by someone else before the server binds it: then the
        // server exits without printing `ready`, and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(venv.join("bin/python"))
                .args(["-c", SERVER, kind_arg, &port.to_string()])
                .arg(&maildir)
                .arg(tls_dir.join("server.crt"))
                .arg(tls_dir.join("server.key"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start aiosmtpd from the stand-ins' venv");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("piped stdout");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "ready" {
                return Some(Self {
                    child,
                    port,
                    maildir,
                    ca,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start on any of 5 ports");
    }
}

impl Drop for OwnSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
