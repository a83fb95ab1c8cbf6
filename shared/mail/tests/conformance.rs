//! One conformance suite for the mail port, run against every adapter: the file outbox,
//! SMTP to the stand-ins' aiosmtpd sink (plain), SMTP with implicit TLS and with STARTTLS
//! (private aiosmtpd servers using the stand-ins' certificate), and SES v2 on moto. Each
//! case reads back what the sink received and checks what a recipient would see. Then the
//! failures each adapter must classify: what a retry can fix and what it cannot.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use celeriac_mail::config::{SmtpConfig, SmtpSecurity};
use celeriac_mail::{
    MailError, Mailer, Message, OutboxMailer, SesMailer, SharedMailer, SmtpMailer, outbox,
};
use celeriac_testkit::{dead_address, standin};
use support::{
    Delivered, OwnSmtp, OwnSmtpKind, maildir_messages, moto_messages, moto_with_identity, sender,
    smtp_sink, unique_address,
};

/// A mailer and where to read what it delivered.
struct Sink {
    mailer: SharedMailer,
    read: Readback,
    // Keeps a private server alive for the test.
    _server: Option<OwnSmtp>,
}

enum Readback {
    Outbox(PathBuf),
    Maildir(PathBuf),
    Moto(String),
}

impl Sink {
    async fn delivered_to(&self, rcpt: &str) -> Vec<Delivered> {
        match &self.read {
            Readback::Outbox(dir) => outbox::entries(dir)
                .expect("outbox readable")
                .into_iter()
                .filter(|e| e.to == rcpt)
                .map(|e| Delivered {
                    to: vec![e.to],
                    subject: e.subject,
                    html: e.html,
                    text: e.text,
                    message_id: e.message_id.trim_matches(['<', '>']).to_owned(),
                })
                .collect(),
            Readback::Maildir(dir) => maildir_messages(dir, rcpt),
            Readback::Moto(url) => moto_messages(url, rcpt)
                .await
                .into_iter()
                .map(|(_, d)| d)
                .collect(),
        }
    }
}

fn smtp_config(host: &str, port: u16, security: SmtpSecurity, ca: Option<PathBuf>) -> SmtpConfig {
    SmtpConfig {
        host: host.to_owned(),
        port,
        security,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
        ca_file: ca,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "celeriac-mail-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

async fn outbox_sink() -> Option<Sink> {
    let dir = temp_dir("outbox");
    let mailer = OutboxMailer::open(&dir, sender("no-reply@shop.example")).expect("outbox");
    Some(Sink {
        mailer: Arc::new(mailer),
        read: Readback::Outbox(dir),
        _server: None,
    })
}

async fn smtp_plain_sink() -> Option<Sink> {
    let (host, port, maildir) = smtp_sink()?;
    let config = smtp_config(&host, port, SmtpSecurity::Plain, None);
    Some(Sink {
        mailer: Arc::new(SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp")),
        read: Readback::Maildir(maildir),
        _server: None,
    })
}

async fn smtp_tls_sink(kind: OwnSmtpKind, security: SmtpSecurity) -> Option<Sink> {
    let server = OwnSmtp::start(kind)?;
    let config = smtp_config("127.0.0.1", server.port, security, Some(server.ca.clone()));
    Some(Sink {
        mailer: Arc::new(SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp")),
        read: Readback::Maildir(server.maildir.clone()),
        _server: Some(server),
    })
}

async fn ses_sink() -> Option<Sink> {
    // A sender of its own, verified here, so no other run's identities matter.
    let from = unique_address("ses-sender");
    let (sdk, url) = moto_with_identity(&from).await?;
    Some(Sink {
        mailer: Arc::new(SesMailer::new(&sdk, sender(&from))),
        read: Readback::Moto(url),
        _server: None,
    })
}

/// A link longer than a MIME line (76 characters), with a query string: quoted-printable
/// must not break it, HTML must escape its `&`, the text part must keep it raw.
fn long_link() -> String {
    format!(
        "https://shop.example/api/v1/user/confirm?token={}&next=%2Fcart",
        "Zx9".repeat(60)
    )
}

async fn both_parts_arrive_as_sent(sink: Sink) {
    let to = unique_address("both-parts");
    let link = long_link();
    let subject = "Подтвердите регистрацию — LocalTea ✓";
    let html = format!(
        "<p>Здравствуйте, Анна!</p>\n<p><a href=\"{}\">Confirm</a></p>",
        link.replace('&', "&amp;")
    );
    let text = format!("Здравствуйте, Анна!\n\n{link}");
    let message = Message::new(&to, subject, html.clone(), text.clone())
        .expect("valid")
        .with_id(&uuid::Uuid::new_v4().to_string());
    let sent = sink.mailer.send(&message).await.expect("sent");
    assert!(
        sent.message_id.starts_with(&format!("<{}@", message.id())),
        "{}",
        sent.message_id
    );

    let delivered = sink.delivered_to(&to).await;
    assert_eq!(delivered.len(), 1, "exactly one message for {to}");
    let got = &delivered[0];
    assert_eq!(got.to, [to.as_str()]);
    assert_eq!(got.subject, subject);
    assert_eq!(got.html, html);
    assert_eq!(got.text, text);
    assert_eq!(got.message_id, sent.message_id.trim_matches(['<', '>']));
    assert!(
        got.message_id.starts_with(message.id()),
        "{}",
        got.message_id
    );
}

async fn each_send_is_its_own_message(sink: Sink) {
    let to = unique_address("two-sends");
    for subject in ["First", "Second"] {
        let message =
            Message::new(&to, subject, format!("<p>{subject}</p>"), subject).expect("valid");
        sink.mailer.send(&message).await.expect("sent");
    }
    let mut subjects: Vec<String> = sink
        .delivered_to(&to)
        .await
        .into_iter()
        .map(|d| d.subject)
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["First", "Second"]);
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn sink() -> Option<Sink> { $open }
            conformance!(@cases both_parts_arrive_as_sent, each_send_is_its_own_message);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(sink) = sink().await else { return };
            super::$case(sink).await;
        }
    )*};
}

conformance! {
    outbox_files => outbox_sink().await;
    smtp_plain => smtp_plain_sink().await;
    smtp_implicit_tls => smtp_tls_sink(OwnSmtpKind::ImplicitTls, SmtpSecurity::Tls).await;
    smtp_starttls => smtp_tls_sink(OwnSmtpKind::StartTls, SmtpSecurity::StartTls).await;
    ses_on_moto => ses_sink().await;
}

// ---------------------------------------------------------------------------- failures

fn message_to(to: &str) -> Message {
    Message::new(to, "Hello", "<p>Hello</p>", "Hello").expect("valid")
}

#[tokio::test]
async fn smtp_down_is_retryable() {
    let addr = dead_address();
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let config = smtp_config(host, port.parse().expect("port"), SmtpSecurity::Plain, None);
    let mailer = SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp");
    let err = mailer
        .send(&message_to("bob@example.com"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, MailError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_4xx_retryable_without_naming_the_recipient() {
    let Some(server) = OwnSmtp::start(OwnSmtpKind::Refusing) else {
        return;
    };
    let config = smtp_config("127.0.0.1", server.port, SmtpSecurity::Plain, None);
    let mailer = SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp");

    let permanent = unique_address("permanent");
    let err = mailer.send(&message_to(&permanent)).await.expect_err("550");
    assert!(
        matches!(&err, MailError::Rejected(text) if text.contains("550")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&permanent), "{err}");

    let transient = unique_address("transient");
    let err = mailer.send(&message_to(&transient)).await.expect_err("451");
    assert!(
        matches!(&err, MailError::Unavailable(text) if text.contains("451")),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&transient), "{err}");

    mailer
        .send(&message_to(&unique_address("accepted")))
        .await
        .expect("other recipients are taken");
}

#[tokio::test]
async fn starttls_is_required_not_optional() {
    // The shared sink speaks plain SMTP only: a mailer told to use STARTTLS must refuse to
    // send in clear text rather than fall back.
    let Some((host, port, maildir)) = smtp_sink() else {
        return;
    };
    let config = smtp_config(&host, port, SmtpSecurity::StartTls, None);
    let mailer = SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp");
    let to = unique_address("no-starttls");
    let err = mailer
        .send(&message_to(&to))
        .await
        .expect_err("no STARTTLS");
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(maildir_messages(&maildir, &to).is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_sends_nothing() {
    let Some(server) = OwnSmtp::start(OwnSmtpKind::ImplicitTls) else {
        return;
    };
    // No SMTP_CA_FILE: the stand-ins' private CA is not a public root.
    let config = smtp_config("127.0.0.1", server.port, SmtpSecurity::Tls, None);
    let mailer = SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp");
    let to = unique_address("untrusted");
    let err = mailer
        .send(&message_to(&to))
        .await
        .expect_err("bad certificate");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(maildir_messages(&server.maildir, &to).is_empty());
}

#[tokio::test]
async fn a_missing_ca_file_fails_at_init() {
    let config = smtp_config(
        "127.0.0.1",
        465,
        SmtpSecurity::Tls,
        Some("/nonexistent/ca.pem".into()),
    );
    let err = SmtpMailer::new(&config, sender("no-reply@shop.example")).expect_err("no CA");
    assert_eq!(err.key, "SMTP_CA_FILE");
}

#[tokio::test]
async fn ses_refuses_an_unverified_sender_for_good() {
    let Some(sdk) = celeriac_testkit::moto_sdk().await else {
        return;
    };
    let Some(url) = standin("CELERIAC_TEST_MOTO_URL") else {
        return;
    };
    let mailer = SesMailer::new(&sdk, sender(&unique_address("unverified")));
    let to = unique_address("ses-refused");
    let err = mailer.send(&message_to(&to)).await.expect_err("unverified");
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(moto_messages(&url, &to).await.is_empty());
}

#[tokio::test]
async fn ses_down_is_retryable() {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", dead_address()))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let mailer = SesMailer::new(&sdk, sender("no-reply@shop.example"));
    let err = mailer
        .send(&message_to("bob@example.com"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, MailError::Unavailable(_)), "{err:?}");
}

/// The SES adapter as a Lambda builds it: `MAIL_PROVIDER=ses` and the standard
/// `AWS_ENDPOINT_URL_SESV2`, read from the process environment by `MailConfig::from_env`
/// and `celeriac_platform::aws::load`. The environment cannot be changed inside this
/// process, so the check runs in a child: this test binary again, running only
/// `ses_from_the_environment_child`.
#[tokio::test]
async fn ses_from_the_environment() {
    let from = unique_address("env-sender");
    let Some((_, url)) = moto_with_identity(&from).await else {
        return;
    };
    let to = unique_address("env-recipient");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "ses_from_the_environment_child",
            "--ignored",
            "--nocapture",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MAIL_PROVIDER", "ses")
        .env("MAIL_FROM", format!("Shop <{from}>"))
        .env("AWS_ENDPOINT_URL_SESV2", &url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("CELERIAC_MAIL_CHILD_TO", &to)
        .output()
        .expect("run the child");
    assert!(
        output.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let delivered = moto_messages(&url, &to).await;
    assert_eq!(
        delivered.len(),
        1,
        "one message through the env-built client"
    );
    assert_eq!(delivered[0].1.subject, "From the environment");
}

#[tokio::test]
#[ignore = "run by ses_from_the_environment in a child process with its own environment"]
async fn ses_from_the_environment_child() {
    let to = std::env::var("CELERIAC_MAIL_CHILD_TO").expect("run by ses_from_the_environment");
    let config = celeriac_mail::MailConfig::from_env().expect("config");
    let mailer = celeriac_mail::open(&config).await.expect("mailer");
    assert_eq!(mailer.adapter(), "ses");
    let message = Message::new(&to, "From the environment", "<p>env</p>", "env").expect("valid");
    mailer.send(&message).await.expect("sent through moto");
}
