//! What the system tests share: an HTTP client for `celeriac dev` and the mail readers.
#![allow(dead_code)] // each test file uses its own part of it

use std::path::Path;
use std::time::Duration;

use celeriac_testkit::DevServer;
use serde_json::{Value, json};

pub struct Client {
    http: reqwest::Client,
    /// The server's base URL.
    pub base: String,
}

impl Client {
    pub fn new(server: &DevServer) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.url.clone(),
        }
    }

    pub async fn post(&self, path: &str, body: Value, bearer: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST")
    }

    pub async fn get(&self, url: &str, bearer: Option<&str>) -> reqwest::Response {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let mut request = self.http.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/user/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }
}

impl Client {
    /// Enqueues `task` with `args` through `celeriac dev`'s `POST /_celeriac/tasks`, as
    /// beat or `celeriac call` would; its id.
    pub async fn call_task(&self, task: &str, args: Option<Value>) -> String {
        let mut body = json!({ "task": task });
        if let Some(args) = args {
            body["args"] = args;
        }
        let called = self.post("/_celeriac/tasks", body, None).await;
        assert!(called.status().is_success(), "{}", called.status());
        json_of(called).await["task_id"]
            .as_str()
            .expect("task id")
            .to_owned()
    }

    /// Waits until the task's state is final (`GET /task/{id}/status`); returns its status
    /// document. For tasks of the system (no owner); see [`Self::task_finished_as`].
    pub async fn task_finished(&self, task_id: &str) -> Value {
        self.task_finished_as(task_id, None).await
    }

    /// [`Self::task_finished`] for a task enqueued on a user's behalf, read with their
    /// session (anyone else gets 404).
    pub async fn task_finished_as(&self, task_id: &str, bearer: Option<&str>) -> Value {
        for _ in 0..600 {
            let response = self.get(&format!("/task/{task_id}/status"), bearer).await;
            if response.status() == reqwest::StatusCode::OK {
                let status = json_of(response).await;
                if matches!(
                    status["state"].as_str(),
                    Some("SUCCESS" | "FAILURE" | "REVOKED")
                ) {
                    return status;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {task_id} did not finish within 30 s");
    }
}

/// The user id behind a session (`GET /api/v1/user/me`).
pub async fn user_id_of(client: &Client, bearer: &str) -> String {
    let me = client.get("/api/v1/user/me", Some(bearer)).await;
    assert_eq!(me.status(), reqwest::StatusCode::OK);
    json_of(me).await["user"]["id"]
        .as_str()
        .expect("user id")
        .to_owned()
}

/// A fresh directory for `celeriac dev`'s file outbox (`MAIL_OUTBOX_DIR`).
pub fn outbox_dir(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "celeriac-{test}-outbox-{}",
        celeriac_testkit::free_port()
    ))
}

pub async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

pub fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.test", uuid_like())
}

fn uuid_like() -> String {
    celeriac_testkit::unique_prefix("acct").replace([':', '{', '}'], "-")
}

/// The first `http…/confirm?token=…` link in a text.
pub fn confirmation_link(text: &str) -> Option<String> {
    link_to(text, "/api/v1/user/confirm?token=")
}

/// The first link in `text` containing `marker` (a path and `?token=`).
pub fn link_to(text: &str, marker: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.contains(marker))
        .map(str::to_owned)
}

/// The token of a mailed link.
pub fn token_of(link: &str) -> String {
    link.split_once("token=")
        .map(|(_, token)| token.to_owned())
        .unwrap_or_else(|| panic!("no token in {link}"))
}

impl Client {
    /// Confirms as the button of the link's page does, but as JSON: `POST
    /// /api/v1/user/confirm {token}`.
    pub async fn confirm(&self, link: &str) -> reqwest::Response {
        self.post(
            "/api/v1/user/confirm",
            json!({"token": token_of(link)}),
            None,
        )
        .await
    }

    /// Posts `fields` as the form of a mailed link's page does, to the link's own URL.
    pub async fn submit_form(&self, link: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.http
            .post(link)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST form")
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value, as a browser sends it.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Every mail to `to` in the file outbox at `dir` (each one's text part), oldest first.
pub fn outbox_texts(dir: &Path, to: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(listing) = std::fs::read_dir(dir) {
        for entry in listing.flatten() {
            let Ok(raw) = std::fs::read(entry.path()) else {
                continue;
            };
            let Ok(mail) = serde_json::from_slice::<Value>(&raw) else {
                continue;
            };
            if mail["to"].as_str().is_some_and(|t| t.contains(to)) {
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                let text = mail["text"].as_str().unwrap_or_default().to_owned();
                found.push((modified, text));
            }
        }
    }
    found.sort_by_key(|(modified, _)| *modified);
    found.into_iter().map(|(_, text)| text).collect()
}

/// Waits for a mail to `to` with a link containing `marker` that is not in `known`;
/// returns the link.
pub async fn new_outbox_link(dir: &Path, to: &str, marker: &str, known: &[&str]) -> String {
    for _ in 0..200 {
        let fresh = outbox_texts(dir, to)
            .iter()
            .filter_map(|text| link_to(text, marker))
            .find(|link| !known.contains(&link.as_str()));
        if let Some(link) = fresh {
            return link;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new {marker} link to {to} in {}", dir.display());
}

/// Waits for the email to `to` in the file outbox at `dir`; returns its text part (the
/// oldest, when there are several).
pub async fn outbox_text(dir: &Path, to: &str) -> String {
    for _ in 0..200 {
        if let Some(text) = outbox_texts(dir, to).into_iter().next() {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no email to {to} in {}", dir.display());
}

/// Registers `email`, confirms it through the outbox link, logs in; the access token.
pub async fn signed_up(client: &Client, outbox: &Path, email: &str) -> String {
    let password = "green tea at five";
    let registered = client
        .post(
            "/api/v1/user/registration",
            json!({"email": email, "password": password}),
            None,
        )
        .await;
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    let link = confirmation_link(&outbox_text(outbox, email).await).expect("a link");
    assert_eq!(
        client.confirm(&link).await.status(),
        reqwest::StatusCode::OK
    );
    let login = client.login(email, password).await;
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    json_of(login).await["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}
