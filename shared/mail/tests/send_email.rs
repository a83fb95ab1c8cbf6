//! The `send_email` task through the real task runner: bad arguments fail at once (dead
//! letter, no retries, nothing sent), an SMTP relay that is down is retried and then dead
//! lettered, and a message delivered twice (one after the other, or at the same time)
//! sends one email to the SMTP sink, with task state and idempotency records in Redis.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac_kv::{MemoryKv, RedisKv, SharedKv};
use celeriac_mail::config::{SmtpConfig, SmtpSecurity};
use celeriac_mail::templates::REGISTRATION_CONFIRMATION;
use celeriac_mail::{
    MailConfig, OutboxMailer, SPEC, SendEmail, SendEmailArgs, SmtpMailer, Templates, outbox,
};
use celeriac_tasks::{Envelope, Outcome, Registry, Runner, Task, TaskContext, TaskState};
use chrono::Utc;
use support::{maildir_messages, sender, smtp_sink, unique_address};

fn envelope(args: serde_json::Value, retries: u32) -> Envelope {
    Envelope {
        id: uuid::Uuid::new_v4().to_string(),
        task: "send_email".into(),
        args,
        retries,
        eta: None,
        expires: None,
        priority: None,
        queue: SPEC.queue.into(),
        root_id: None,
        parent_id: None,
        idempotency_key: None,
        timelimit: Some(SPEC.time_limit.as_secs()),
        enqueued_at: Utc::now(),
        origin: Some("test".into()),
        trace_id: None,
        owner: None,
    }
}

fn runner(task: SendEmail, kv: SharedKv) -> Runner {
    Runner::new(Arc::new(Registry::new().register(task)), kv)
}

fn temp_outbox() -> PathBuf {
    std::env::temp_dir().join(format!(
        "celeriac-mail-task-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

fn smtp_task(host: &str, port: u16) -> SendEmail {
    let config = SmtpConfig {
        host: host.to_owned(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
        ca_file: None,
    };
    SendEmail::new(
        Arc::new(SmtpMailer::new(&config, sender("no-reply@shop.example")).expect("smtp")),
        Arc::new(Templates::default()),
    )
}

async fn redis() -> Option<SharedKv> {
    let kv = RedisKv::open(&celeriac_testkit::redis_single()?)
        .await
        .expect("redis config");
    Some(Arc::new(kv))
}

#[tokio::test]
async fn bad_arguments_are_dead_lettered_at_once_and_send_nothing() {
    let dir = temp_outbox();
    let mailer = OutboxMailer::open(&dir, sender("no-reply@shop.example")).expect("outbox");
    let kv: SharedKv = Arc::new(MemoryKv::new());
    let runner = runner(
        SendEmail::new(Arc::new(mailer), Arc::new(Templates::default())),
        kv,
    );
    let link = serde_json::json!({"link": "https://shop.example/c"});
    let cases = [
        (
            "no recipient",
            serde_json::json!({"subject": "s", "body": "b"}),
        ),
        (
            "not an address",
            serde_json::json!({"email_to": "bob at example", "subject": "s", "body": "b"}),
        ),
        (
            "both body and template",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s", "body": "b",
                "template_name": REGISTRATION_CONFIRMATION, "environment": link}),
        ),
        (
            "neither body nor template",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s"}),
        ),
        (
            "unknown template",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s",
                "template_name": "welcome_aboard.html"}),
        ),
        (
            "template without its link",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s",
                "template_name": REGISTRATION_CONFIRMATION, "environment": {}}),
        ),
        (
            "environment not an object",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s",
                "template_name": REGISTRATION_CONFIRMATION, "environment": [1, 2]}),
        ),
        (
            "a line break in the subject",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s\r\nBcc: eve@example.com",
                "body": "b"}),
        ),
        (
            "unknown argument",
            serde_json::json!({"email_to": "bob@example.com", "subject": "s", "body": "b",
                "bcc": "eve@example.com"}),
        ),
    ];
    for (case, args) in cases {
        let envelope = envelope(args, 0);
        let outcome = runner.execute(envelope.to_json().as_bytes(), 1, None).await;
        assert!(matches!(outcome, Outcome::Dead(_)), "{case}: {outcome:?}");
        let record = runner
            .store()
            .get(&envelope.id)
            .await
            .expect("record")
            .expect("exists");
        assert_eq!(record.status, TaskState::Failure, "{case}");
        assert_eq!(record.retries, 0, "{case}: no retry");
    }
    assert!(
        outbox::entries(&dir).expect("outbox").is_empty(),
        "nothing was sent"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_smtp_relay_that_is_down_is_retried_then_dead_lettered() {
    let addr = celeriac_testkit::dead_address();
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let task = smtp_task(host, port.parse().expect("port"));
    let args =
        SendEmailArgs::registration_confirmation("bob@example.com", "https://shop.example/c");

    let ctx = TaskContext {
        task_id: "t-1".into(),
        retries: 0,
        deadline: Instant::now() + Duration::from_secs(30),
    };
    let err = task.run(args.clone(), &ctx).await.expect_err("relay down");
    assert!(err.is_retryable(), "{err:?}");

    let runner = runner(task, Arc::new(MemoryKv::new()));
    let args = serde_json::to_value(&args).expect("json");
    let first = envelope(args.clone(), 0);
    let outcome = runner.execute(first.to_json().as_bytes(), 1, None).await;
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");
    let record = runner
        .store()
        .get(&first.id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Retry);

    // The last attempt Celery's policy allows: no retry left, so it goes to the dead letters.
    let last = envelope(args, SPEC.max_retries);
    let outcome = runner.execute(last.to_json().as_bytes(), 1, None).await;
    assert!(matches!(outcome, Outcome::Dead(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_twice_sends_one_email() {
    let Some((host, port, maildir)) = smtp_sink() else {
        return;
    };
    let Some(kv) = redis().await else { return };
    let runner = runner(smtp_task(&host, port), kv);
    let to = unique_address("delivered-twice");
    let link = "https://shop.example/api/v1/user/confirm?token=once";
    let args = SendEmailArgs::registration_confirmation(&to, link).with("username", "Anna");
    let envelope = envelope(serde_json::to_value(&args).expect("json"), 0);
    let body = envelope.to_json();

    assert_eq!(runner.execute(body.as_bytes(), 1, None).await, Outcome::Ack);
    assert_eq!(runner.execute(body.as_bytes(), 2, None).await, Outcome::Ack);

    let delivered = maildir_messages(&maildir, &to);
    assert_eq!(delivered.len(), 1, "one email for two deliveries");
    let email = &delivered[0];
    assert_eq!(email.subject, "Confirm your registration");
    assert!(email.text.lines().any(|l| l == link), "{}", email.text);
    assert!(
        email.html.contains(&format!("href=\"{link}\"")),
        "{}",
        email.html
    );
    assert!(email.html.contains("Hello Anna,"), "{}", email.html);
    assert_eq!(email.message_id, format!("{}@shop.example", envelope.id));

    let record = runner
        .store()
        .get(&envelope.id)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(record.status, TaskState::Success);
    let result = record.result.expect("result");
    assert_eq!(result["via"], "smtp");
    assert!(
        !result.to_string().contains(&to),
        "no recipient in the public result: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_at_once_send_one_email() {
    let Some((host, port, maildir)) = smtp_sink() else {
        return;
    };
    let Some(kv) = redis().await else { return };
    let runner = runner(smtp_task(&host, port), kv);
    let to = unique_address("concurrent-copies");
    let args = SendEmailArgs::email_change_confirmation(&to, "https://shop.example/e?t=1");
    let body = envelope(serde_json::to_value(&args).expect("json"), 0).to_json();

    let (a, b) = tokio::join!(
        runner.execute(body.as_bytes(), 1, None),
        runner.execute(body.as_bytes(), 1, None)
    );
    // One runs; the other finds it running (deferred, to look again later) or finished.
    let outcomes = [a, b];
    assert!(outcomes.contains(&Outcome::Ack), "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Ack | Outcome::Defer { .. })),
        "{outcomes:?}"
    );
    // The deferred copy, delivered again later, finds the task done.
    assert_eq!(runner.execute(body.as_bytes(), 1, None).await, Outcome::Ack);
    assert_eq!(maildir_messages(&maildir, &to).len(), 1);
}

#[tokio::test]
async fn a_developer_reads_the_confirmation_link_in_the_outbox() {
    let dir = temp_outbox();
    let env: std::collections::HashMap<String, String> =
        [("MAIL_OUTBOX_DIR".to_owned(), dir.display().to_string())].into();
    let config = MailConfig::from_source(&env).expect("the default config");
    let task = SendEmail::from_config(&config)
        .await
        .expect("outbox mailer");
    let runner = runner(task, Arc::new(MemoryKv::new()));
    let link = "http://127.0.0.1:3000/api/v1/user/confirm?token=dev-token&x=1";
    let args = SendEmailArgs::registration_confirmation("anna@example.com", link);
    let envelope = envelope(serde_json::to_value(&args).expect("json"), 0);
    assert_eq!(
        runner.execute(envelope.to_json().as_bytes(), 1, None).await,
        Outcome::Ack
    );

    let entries = outbox::entries(&dir).expect("outbox");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.to, "anna@example.com");
    assert_eq!(entry.subject, "Confirm your registration");
    assert!(entry.text.lines().any(|l| l == link), "{}", entry.text);
    assert!(entry.html.contains(&link.replace('&', "&amp;")));
    let _ = std::fs::remove_dir_all(&dir);
}
