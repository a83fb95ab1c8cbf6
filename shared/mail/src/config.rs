//! Mail settings, read once from the environment at init.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MAIL_PROVIDER` | `outbox`, `smtp` or `ses` | `outbox`; required on Lambda |
//! | `MAIL_FROM` | sender, `Name <address>` or a bare address | required for smtp and ses |
//! | `MAIL_OUTBOX_DIR` | where the outbox writes messages | `.celeriac/outbox` |
//! | `MAIL_TEMPLATES_DIR` | templates that replace the embedded ones by name | none |
//! | `SMTP_HOST`, `SMTP_PORT` | the relay | port 465 (tls), 587 (starttls), 25 (plain) |
//! | `SMTP_SECURITY` | `tls` (implicit, 465), `starttls` or `plain` | `starttls` on port 587, else `tls` |
//! | `SMTP_USERNAME`, `SMTP_PASSWORD` | credentials, sent only over TLS to a remote relay | none |
//! | `SMTP_TIMEOUT_MS` | bound on each SMTP command | 10000 |
//! | `SMTP_CA_FILE` | PEM roots trusted besides the public ones | none |
//! | `MAIL_SES_CONFIGURATION_SET` | SES configuration set (bounce and delivery events) | none |

use std::path::PathBuf;
use std::time::Duration;

use celeriac_platform::config::{ConfigError, EnvSource, ProcessEnv};
use lettre::message::Mailbox;
use secrecy::SecretString;

use crate::message::parse_mailbox;

/// The outbox's directory when `MAIL_OUTBOX_DIR` is not set.
pub const DEFAULT_OUTBOX_DIR: &str = ".celeriac/outbox";
/// The sender of outbox messages when `MAIL_FROM` is not set.
pub const DEFAULT_OUTBOX_FROM: &str = "celeriac <no-reply@celeriac.localhost>";

/// Everything the mail crate reads from the environment.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Where messages go.
    pub provider: MailProvider,
    /// The sender of every message.
    pub from: Mailbox,
    /// Templates that replace the embedded ones of the same name.
    pub templates_dir: Option<PathBuf>,
}

/// Which adapter sends.
#[derive(Debug, Clone)]
pub enum MailProvider {
    /// Files in a directory (the embedded default, for development).
    Outbox {
        /// `MAIL_OUTBOX_DIR`.
        dir: PathBuf,
    },
    /// An SMTP relay.
    Smtp(SmtpConfig),
    /// Amazon SES v2, through the shared AWS SDK configuration.
    Ses {
        /// `MAIL_SES_CONFIGURATION_SET`.
        configuration_set: Option<String>,
    },
}

/// How to reach an SMTP relay.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `SMTP_HOST`; also the name its certificate must carry.
    pub host: String,
    /// `SMTP_PORT`.
    pub port: u16,
    /// `SMTP_SECURITY`.
    pub security: SmtpSecurity,
    /// `SMTP_USERNAME`.
    pub username: Option<String>,
    /// `SMTP_PASSWORD`; `Debug` prints it redacted.
    pub password: Option<SecretString>,
    /// `SMTP_TIMEOUT_MS`: bound on connecting and on each command.
    pub timeout: Duration,
    /// `SMTP_CA_FILE`: extra trusted roots (a private relay, the test stand-ins).
    pub ca_file: Option<PathBuf>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain connect, then STARTTLS, required: a relay that does not offer it is an error.
    StartTls,
    /// No TLS at all: only for local sinks.
    Plain,
}

impl SmtpSecurity {
    fn default_port(self) -> u16 {
        match self {
            Self::Tls => 465,
            Self::StartTls => 587,
            Self::Plain => 25,
        }
    }
}

impl MailConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads any [`EnvSource`]; tests pass a map.
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let provider_name = match env.var("MAIL_PROVIDER") {
            Some(name) => name.trim().to_ascii_lowercase(),
            // On Lambda an unset provider would write customers' mail into the function's
            // scratch disk, where no one reads it: refuse to start instead.
            None if env.var("AWS_LAMBDA_FUNCTION_NAME").is_some() => {
                return Err(error(
                    "MAIL_PROVIDER",
                    "required on Lambda: smtp or ses (or outbox, explicitly, for local runs)",
                ));
            }
            None => "outbox".to_owned(),
        };
        let from = env.var("MAIL_FROM");
        let provider = match provider_name.as_str() {
            "outbox" => MailProvider::Outbox {
                dir: PathBuf::from(
                    env.var("MAIL_OUTBOX_DIR")
                        .unwrap_or_else(|| DEFAULT_OUTBOX_DIR.to_owned()),
                ),
            },
            "smtp" => MailProvider::Smtp(smtp_config(env)?),
            "ses" => MailProvider::Ses {
                configuration_set: env.var("MAIL_SES_CONFIGURATION_SET"),
            },
            other => {
                return Err(error(
                    "MAIL_PROVIDER",
                    format!("expected outbox, smtp or ses, got {other:?}"),
                ));
            }
        };
        let from = match (from, &provider) {
            (Some(from), _) => parse_mailbox(&from).map_err(|e| {
                error(
                    "MAIL_FROM",
                    format!("expected `Name <address>` or an address: {e}"),
                )
            })?,
            (None, MailProvider::Outbox { .. }) => {
                parse_mailbox(DEFAULT_OUTBOX_FROM).map_err(|e| error("MAIL_FROM", e))?
            }
            (None, _) => {
                return Err(error(
                    "MAIL_FROM",
                    format!("required when MAIL_PROVIDER={provider_name}"),
                ));
            }
        };
        Ok(Self {
            provider,
            from,
            templates_dir: env.var("MAIL_TEMPLATES_DIR").map(PathBuf::from),
        })
    }
}

fn smtp_config(env: &impl EnvSource) -> Result<SmtpConfig, ConfigError> {
    let host = env
        .var("SMTP_HOST")
        .ok_or_else(|| error("SMTP_HOST", "required when MAIL_PROVIDER=smtp"))?
        .trim()
        .to_owned();
    let port: Option<u16> = match env.var("SMTP_PORT") {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse()
                .map_err(|_| error("SMTP_PORT", format!("expected a port number, got {raw:?}")))?,
        ),
    };
    let security = match env
        .var("SMTP_SECURITY")
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        None if port == Some(587) => SmtpSecurity::StartTls,
        None | Some("tls" | "ssl" | "smtps") => SmtpSecurity::Tls,
        Some("starttls") => SmtpSecurity::StartTls,
        Some("plain" | "none") => SmtpSecurity::Plain,
        Some(other) => {
            return Err(error(
                "SMTP_SECURITY",
                format!("expected tls, starttls or plain, got {other:?}"),
            ));
        }
    };
    let username = env.var("SMTP_USERNAME");
    let password = env.var("SMTP_PASSWORD").map(SecretString::from);
    if username.is_some() != password.is_some() {
        return Err(error(
            "SMTP_PASSWORD",
            "SMTP_USERNAME and SMTP_PASSWORD go together",
        ));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if security == SmtpSecurity::Plain && password.is_some() && !loopback {
        return Err(error(
            "SMTP_SECURITY",
            "plain would send SMTP_PASSWORD unencrypted to a remote host; use tls or starttls",
        ));
    }
    let timeout_ms: u64 = match env.var("SMTP_TIMEOUT_MS") {
        None => 10_000,
        Some(raw) => raw.trim().parse().map_err(|_| {
            error(
                "SMTP_TIMEOUT_MS",
                format!("expected milliseconds, got {raw:?}"),
            )
        })?,
    };
    Ok(SmtpConfig {
        host,
        port: port.unwrap_or_else(|| security.default_port()),
        security,
        username,
        password,
        timeout: Duration::from_millis(timeout_ms),
        ca_file: env.var("SMTP_CA_FILE").map(PathBuf::from),
    })
}

fn error(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_outbox_is_the_default_off_lambda_only() {
        let config = MailConfig::from_source(&env(&[])).expect("valid");
        assert!(
            matches!(&config.provider, MailProvider::Outbox { dir } if dir == std::path::Path::new(DEFAULT_OUTBOX_DIR))
        );
        assert_eq!(config.from.email.to_string(), "no-reply@celeriac.localhost");

        let err = MailConfig::from_source(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "send_email")]))
            .expect_err("no provider on Lambda");
        assert_eq!(err.key, "MAIL_PROVIDER");
    }

    #[test]
    fn smtp_ports_and_security() {
        let base = [
            ("MAIL_PROVIDER", "smtp"),
            ("MAIL_FROM", "Shop <no-reply@shop.example>"),
            ("SMTP_HOST", "smtp.example"),
        ];
        let smtp = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            match MailConfig::from_source(&env(&pairs))
                .expect("valid")
                .provider
            {
                MailProvider::Smtp(smtp) => smtp,
                other => panic!("not smtp: {other:?}"),
            }
        };
        let implicit = smtp(&[]);
        assert_eq!((implicit.security, implicit.port), (SmtpSecurity::Tls, 465));
        let submission = smtp(&[("SMTP_PORT", "587")]);
        assert_eq!(
            (submission.security, submission.port),
            (SmtpSecurity::StartTls, 587)
        );
        let plain = smtp(&[("SMTP_SECURITY", "plain"), ("SMTP_PORT", "2525")]);
        assert_eq!((plain.security, plain.port), (SmtpSecurity::Plain, 2525));
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("MAIL_PROVIDER", "pigeon")], "MAIL_PROVIDER"),
            (&[("MAIL_PROVIDER", "ses")], "MAIL_FROM"),
            (&[("MAIL_FROM", "not an address")], "MAIL_FROM"),
            (
                &[("MAIL_PROVIDER", "smtp"), ("MAIL_FROM", "a@b.example")],
                "SMTP_HOST",
            ),
            (
                &[
                    ("MAIL_PROVIDER", "smtp"),
                    ("MAIL_FROM", "a@b.example"),
                    ("SMTP_HOST", "h"),
                    ("SMTP_PORT", "smtp"),
                ],
                "SMTP_PORT",
            ),
            (
                &[
                    ("MAIL_PROVIDER", "smtp"),
                    ("MAIL_FROM", "a@b.example"),
                    ("SMTP_HOST", "relay.example"),
                    ("SMTP_SECURITY", "plain"),
                    ("SMTP_USERNAME", "u"),
                    ("SMTP_PASSWORD", "hunter2"),
                ],
                "SMTP_SECURITY",
            ),
        ];
        for (pairs, key) in cases {
            let err = MailConfig::from_source(&env(pairs)).expect_err(key);
            assert_eq!(err.key, *key, "{pairs:?}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn the_password_never_reaches_debug_output() {
        let config = MailConfig::from_source(&env(&[
            ("MAIL_PROVIDER", "smtp"),
            ("MAIL_FROM", "a@b.example"),
            ("SMTP_HOST", "relay.example"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "hunter2-secret"),
        ]))
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        assert!(printed.contains("mailer"), "{printed}");
    }
}
