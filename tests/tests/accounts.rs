//! The shop's accounts as a new user meets them through `celeriac dev`: register, read the
//! confirmation email (the file outbox, or the SMTP sink with Redis and PostgreSQL),
//! confirm, log in, refresh, the 4th login in a minute refused with 429, a replayed refresh
//! token ending every session, and Redis stopping under the accounts. Then what a squatter
//! tries (registering someone else's address first), unconfirmed accounts expiring with
//! their link, resending the link, and resetting a password by mail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use celeriac_testkit::{DevServer, OwnRedis, free_port, standin};
use support::{
    Client, confirmation_link, json_of, new_outbox_link, outbox_text, token_of, unique_email,
};

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

    let text = read_mail(email).await;
    let link = confirmation_link(&text).unwrap_or_else(|| panic!("a link in: {text}"));
    assert!(link.starts_with(&client.base), "{link}");

    // Opening the link (as a mail scanner does) shows a page with a button, and confirms
    // nothing: login is still refused with a reason (it counts as an attempt).
    let page = client.get(&link, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    let page = page.text().await.expect("page");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains(&token_of(&link)), "{page}");
    let early = client.login(email, password).await;
    assert_eq!(early.status(), StatusCode::FORBIDDEN);

    let confirmed = client.confirm(&link).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(!json_of(confirmed).await["user"]["confirmed_at"].is_null());
    let reused = client.confirm(&link).await;
    assert_eq!(
        reused.status(),
        StatusCode::BAD_REQUEST,
        "a link works once"
    );

    // The address is taken now, but registration does not say so: the same answer as a
    // new registration (the owner gets a mail instead), and the account is unchanged.
    let again = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": "another password"}),
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again = json_of(again).await;
    assert_eq!(again["user"]["email"], email);
    assert!(again["user"]["confirmed_at"].is_null());
    assert!(again["confirmation"]["email_task_id"].is_string());

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
    assert_eq!(client.confirm(&link).await.status(), StatusCode::OK);

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

const CONFIRM_LINK: &str = "/api/v1/user/confirm?token=";
const RESET_LINK: &str = "/api/v1/user/password/reset?token=";

/// `celeriac dev` on embedded defaults with its mail in a fresh outbox, and extra `env`.
fn dev_with_outbox(name: &str, env: &[(&str, String)]) -> (DevServer, PathBuf) {
    let outbox = std::env::temp_dir().join(format!("celeriac-{name}-{}", free_port()));
    let mut all = vec![("MAIL_OUTBOX_DIR", outbox.display().to_string())];
    all.extend(env.iter().cloned());
    (DevServer::start(&all), outbox)
}

async fn register(client: &Client, email: &str, password: &str) -> (StatusCode, Value) {
    let response = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": password}),
            None,
        )
        .await;
    (response.status(), json_of(response).await)
}

/// The keys of a JSON object, nested one level: what two answers must share to be alike.
fn shape(value: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    for (key, inner) in value.as_object().expect("object") {
        keys.push(key.clone());
        if let Some(inner) = inner.as_object() {
            keys.extend(inner.keys().map(|k| format!("{key}.{k}")));
        }
    }
    keys.sort();
    keys
}

#[tokio::test]
async fn a_squatter_can_neither_hold_an_address_nor_choose_its_password() {
    let (server, outbox) = dev_with_outbox("squatter", &[]);
    let client = Client::new(&server);
    let victim = unique_email("victim");

    let (status, squatted) = register(&client, &victim, "the squatter's one").await;
    assert_eq!(status, StatusCode::CREATED);
    let squatter_link = new_outbox_link(&outbox, &victim, CONFIRM_LINK, &[]).await;

    // The owner registers their address: accepted like any registration, and it replaces
    // the unconfirmed account with the owner's password and a new link.
    let (status, owned) = register(&client, &victim, "the owner's own one").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(shape(&owned), shape(&squatted), "{owned} vs {squatted}");
    let owner_link = new_outbox_link(&outbox, &victim, CONFIRM_LINK, &[&squatter_link]).await;

    let dead = client.confirm(&squatter_link).await;
    assert_eq!(
        dead.status(),
        StatusCode::BAD_REQUEST,
        "the squatter's link"
    );
    // The owner presses the page's button (a form post, answered with a page).
    let confirmed = client
        .submit_form(&owner_link, &[("token", &token_of(&owner_link))])
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let page = confirmed.text().await.expect("page");
    assert!(page.contains("confirmed"), "{page}");

    let squatter = client.login(&victim, "the squatter's one").await;
    assert_eq!(squatter.status(), StatusCode::UNAUTHORIZED);
    let owner = client.login(&victim, "the owner's own one").await;
    assert_eq!(owner.status(), StatusCode::OK);
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn an_unconfirmed_account_expires_with_its_link_and_frees_the_address() {
    let (server, outbox) =
        dev_with_outbox("expiry", &[("CONFIRMATION_TTL_SECONDS", "2".to_owned())]);
    let client = Client::new(&server);
    let email = unique_email("slow");

    let (status, registered) = register(&client, &email, "registered and forgot").await;
    let answered = tokio::time::Instant::now();
    assert_eq!(status, StatusCode::CREATED);
    let ttl = registered["confirmation"]["expires_in"]
        .as_u64()
        .expect("expires_in");
    assert_eq!(ttl, 2, "the configured lifetime");
    let link = new_outbox_link(&outbox, &email, CONFIRM_LINK, &[]).await;

    // The server set the expiry before it answered: once this instant passes, it holds.
    tokio::time::sleep_until(answered + Duration::from_secs(ttl)).await;
    let late = client.confirm(&link).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST, "the link expired");
    let login = client.login(&email, "registered and forgot").await;
    assert_eq!(
        login.status(),
        StatusCode::UNAUTHORIZED,
        "an expired account is no account"
    );

    let (status, _) = register(&client, &email, "the real owner").await;
    assert_eq!(status, StatusCode::CREATED, "the address is free again");
    let fresh = new_outbox_link(&outbox, &email, CONFIRM_LINK, &[&link]).await;
    assert_eq!(client.confirm(&fresh).await.status(), StatusCode::OK);
    assert_eq!(
        client.login(&email, "the real owner").await.status(),
        StatusCode::OK
    );
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn resending_the_confirmation_kills_the_old_link_and_tells_nobody_anything() {
    let (server, outbox) = dev_with_outbox("resend", &[]);
    let client = Client::new(&server);
    let email = unique_email("resend");
    let (status, _) = register(&client, &email, "waiting for the mail").await;
    assert_eq!(status, StatusCode::CREATED);
    let first = new_outbox_link(&outbox, &email, CONFIRM_LINK, &[]).await;

    let resend = "/api/v1/user/registration/resend";
    let resent = client.post(resend, json!({"email": email}), None).await;
    assert_eq!(resent.status(), StatusCode::ACCEPTED);
    let resent = json_of(resent).await;
    let second = new_outbox_link(&outbox, &email, CONFIRM_LINK, &[&first]).await;

    let unknown = client
        .post(resend, json!({"email": unique_email("nobody")}), None)
        .await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(unknown).await, resent, "the same answer");

    assert_eq!(
        client.confirm(&first).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(client.confirm(&second).await.status(), StatusCode::OK);
    let confirmed = client.post(resend, json!({"email": email}), None).await;
    assert_eq!(confirmed.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(confirmed).await, resent, "the same answer");

    let bad = client.post(resend, json!({"email": "nope"}), None).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn a_password_reset_by_mail_works_once_and_ends_every_session() {
    let (server, outbox) = dev_with_outbox("reset", &[]);
    let client = Client::new(&server);
    let email = unique_email("forgetful");
    let old_password = "the one i forgot";
    let (status, _) = register(&client, &email, old_password).await;
    assert_eq!(status, StatusCode::CREATED);
    let confirm = new_outbox_link(&outbox, &email, CONFIRM_LINK, &[]).await;
    assert_eq!(client.confirm(&confirm).await.status(), StatusCode::OK);
    let login = client.login(&email, old_password).await;
    assert_eq!(login.status(), StatusCode::OK);
    let session = json_of(login).await;
    let access = session["access_token"].as_str().expect("access");

    let forgot = "/api/v1/user/password/forgot";
    let unknown = client
        .post(forgot, json!({"email": unique_email("nobody")}), None)
        .await;
    let known = client.post(forgot, json!({"email": email}), None).await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        json_of(known).await,
        json_of(unknown).await,
        "known and unknown addresses get the same answer"
    );

    let link = new_outbox_link(&outbox, &email, RESET_LINK, &[]).await;
    let page = client.get(&link, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page");
    assert!(page.contains("name=\"password\""), "{page}");

    let reset = "/api/v1/user/password/reset";
    let token = token_of(&link);
    let short = client
        .post(reset, json!({"token": token, "password": "short"}), None)
        .await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_of(short).await["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("password:"))
    );
    let new_password = "a fresh pot of sencha";
    let done = client
        .post(
            reset,
            json!({"token": token, "password": new_password}),
            None,
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK, "the 400 spent nothing");
    let again = client
        .post(
            reset,
            json!({"token": token, "password": "yet another one"}),
            None,
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "single use");

    let me = client.get("/api/v1/user/me", Some(access)).await;
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );
    let refreshed = client
        .post(
            "/api/v1/user/refresh",
            json!({"refresh_token": session["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(
        refreshed.status(),
        StatusCode::UNAUTHORIZED,
        "and its refresh token"
    );
    assert_eq!(
        client.login(&email, old_password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.login(&email, new_password).await.status(),
        StatusCode::OK
    );
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn an_address_the_mailer_refuses_is_a_400_naming_the_field() {
    let (server, outbox) = dev_with_outbox("bad-address", &[]);
    let client = Client::new(&server);
    let hostile = "<script>alert(1)</script>@x.example";
    let (status, body) = register(&client, hostile, "long enough anyway").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("email:")),
        "{body}"
    );
    // Resend refuses it too: no path stores or mails such an address.
    let resent = client
        .post(
            "/api/v1/user/registration/resend",
            json!({"email": hostile}),
            None,
        )
        .await;
    assert_eq!(resent.status(), StatusCode::BAD_REQUEST);

    let access = support::signed_up(&client, &outbox, &unique_email("changer")).await;
    let change = client
        .post(
            "/api/v1/user/email",
            json!({"new_email": hostile}),
            Some(&access),
        )
        .await;
    assert_eq!(change.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_of(change).await["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("new_email:"))
    );
    let _ = std::fs::remove_dir_all(&outbox);
}
