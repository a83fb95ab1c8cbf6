//! The shop's accounts as a new user meets them through `celeriac dev`: register, read the
//! confirmation email (the file outbox, or the SMTP sink with Redis and PostgreSQL),
//! confirm, log in, refresh, the 4th login in a minute refused with 429, a replayed refresh
//! token ending every session, and Redis stopping under the accounts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use celeriac_testkit::{DevServer, OwnRedis, free_port, standin};
use support::{Client, confirmation_link, json_of, outbox_text, unique_email};

mod support;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Waits for the email to `to` in the SMTP sink's Maildir; returns its text part.
async fn maildir_text(maildir: &Path, to: &str) -> String {
    for _ in 0..200 {
        if let Ok(listing) = std::fs::read_dir(maildir.join("new")) {
            for entry in listing.flatten() {
                let Ok(raw) = std::fs::read(entry.path()) else {
                    continue;
                };
                let Some(message) = mail_parser::MessageParser::default().parse(&raw) else {
                    continue;
                };
                let addressed = message.to().is_some_and(|list| {
                    list.iter()
                        .any(|a| a.address().is_some_and(|addr| addr == to))
                });
                if addressed {
                    return message.body_text(0).unwrap_or_default().to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no email to {to} in {}", maildir.display());
}

/// Registration through login, the 4th attempt refused; shared by both set-ups.
async fn register_confirm_login(
    client: &Client,
    email: &str,
    read_mail: impl AsyncFnOnce(&str) -> String,
) -> Value {
    let password = "green tea at five";
    let registered = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": password, "name": "Mei"}),
            None,
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let registered = json_of(registered).await;
    assert_eq!(registered["user"]["email"], email);
    assert!(registered["user"]["confirmed_at"].is_null());

    let again = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": password}),
            None,
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "one account per email"
    );

    let text = read_mail(email).await;
    let link = confirmation_link(&text).unwrap_or_else(|| panic!("a link in: {text}"));
    assert!(link.starts_with(&client.base), "{link}");

    // Before confirming, login is refused with a reason (it counts as an attempt).
    let early = client.login(email, password).await;
    assert_eq!(early.status(), StatusCode::FORBIDDEN);

    let confirmed = client.get(&link, None).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(!json_of(confirmed).await["user"]["confirmed_at"].is_null());
    let reused = client.get(&link, None).await;
    assert_eq!(
        reused.status(),
        StatusCode::BAD_REQUEST,
        "a link works once"
    );

    let wrong = client.login(email, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let ok = client.login(email, password).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers().contains_key("ratelimit-remaining"));
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let tokens = json_of(ok).await;

    let fourth = client.login(email, password).await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = fourth.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(fourth.headers()["ratelimit-remaining"], "0");
    tokens
}

#[tokio::test]
async fn a_new_user_registers_confirms_logs_in_and_refreshes_on_embedded_defaults() {
    let outbox = std::env::temp_dir().join(format!("celeriac-outbox-{}", free_port()));
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    let client = Client::new(&server);
    let email = unique_email("mei");
    let tokens = register_confirm_login(&client, &email, async |to: &str| {
        outbox_text(&outbox, to).await
    })
    .await;
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");

    let me = client.get("/api/v1/user/me", Some(access)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(json_of(me).await["user"]["email"], email);

    let rotated = client
        .post(
            "/api/v1/user/refresh",
            json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated = json_of(rotated).await;
    let new_access = rotated["access_token"].as_str().expect("access");
    assert_ne!(new_access, access);
    assert_ne!(rotated["refresh_token"], refresh);

    // The old refresh token again: a replay. Every session of the account ends.
    let replay = client
        .post(
            "/api/v1/user/refresh",
            json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    for token in [access, new_access] {
        let me = client.get("/api/v1/user/me", Some(token)).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "sessions revoked");
    }
    let successor = client
        .post(
            "/api/v1/user/refresh",
            json!({"refresh_token": rotated["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(
        successor.status(),
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );

    // Bad input: a clear 400, nothing changes.
    let bad = client
        .post(
            "/api/v1/user/registration",
            json!({"email": "nope", "password": "long enough"}),
            None,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_of(bad).await["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("email:"))
    );
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn the_same_with_redis_postgres_and_the_smtp_sink() {
    let (Some(redis), Some(db), Some(host), Some(port), Some(maildir)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
        standin("CELERIAC_TEST_SMTP_HOST"),
        standin("CELERIAC_TEST_SMTP_PORT"),
        standin("CELERIAC_TEST_SMTP_MAILDIR"),
    ) else {
        return;
    };
    let server = DevServer::start(&[
        // A database of its own, so other tests' logins from 127.0.0.1 do not count here.
        ("REDIS_URL", format!("{}/5", redis.trim_end_matches('/'))),
        ("DATABASE_URL", db),
        ("MAIL_PROVIDER", "smtp".into()),
        ("SMTP_HOST", host),
        ("SMTP_PORT", port),
        ("SMTP_SECURITY", "plain".into()),
        ("MAIL_FROM", "LocalTea <shop@localtea.test>".into()),
    ]);
    let client = Client::new(&server);
    let email = unique_email("sora");
    let maildir = PathBuf::from(maildir);
    register_confirm_login(&client, &email, async |to: &str| {
        maildir_text(&maildir, to).await
    })
    .await;
}

#[tokio::test]
async fn with_redis_stopped_login_is_refused_clearly_and_health_says_redis() {
    let (Some(bin), Some(db)) = (
        standin("CELERIAC_TEST_REDIS_SERVER"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-accounts-redis-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("redis dir");
    let mut redis = OwnRedis::start(&bin, free_port(), &dir);
    let outbox = dir.join("outbox");
    let server = DevServer::start(&[
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
        ("DATABASE_URL", db),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
        ("REDIS_TIMEOUT_MS", "300".into()),
        ("REDIS_CONNECT_TIMEOUT_MS", "300".into()),
    ]);
    let client = Client::new(&server);
    let email = unique_email("kai");
    let password = "oolong every day";
    let registered = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": password}),
            None,
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let link = confirmation_link(&outbox_text(&outbox, &email).await).expect("link");
    assert_eq!(client.get(&link, None).await.status(), StatusCode::OK);

    redis.kill();
    let login = client.login(&email, password).await;
    assert_eq!(
        login.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed"
    );
    let message = json_of(login).await["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("rate limiter"), "{message}");
    let health = client.get("/api/health/", None).await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = json_of(health).await;
    assert_eq!(health["components"]["redis"]["status"], "error", "{health}");
    assert_eq!(health["components"]["database"]["status"], "ok", "{health}");
    let _ = std::fs::remove_dir_all(&dir);
}
