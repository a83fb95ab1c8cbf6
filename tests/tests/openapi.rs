//! The OpenAPI document against the running system: every documented operation is called
//! on `celeriac dev` (embedded defaults), as a client would, and each answer is checked
//! against the document: its status must be one the operation lists, and its JSON body
//! (or, for the pages of mailed links, its HTML as a string) must match that response's
//! schema.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use celeriac_testkit::{DevServer, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use support::{confirmation_link, link_to, new_outbox_link, outbox_text, token_of, unique_email};

/// The document, and what the calls so far have covered.
struct Contract {
    document: Value,
    http: reqwest::Client,
    base: String,
    covered: BTreeSet<String>,
}

impl Contract {
    fn new(server: &DevServer) -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../infra/celeriac/openapi.yaml"
        );
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        let yaml: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
        Self {
            document: serde_json::to_value(yaml).expect("as JSON"),
            http: reqwest::Client::new(),
            base: server.url.clone(),
            covered: BTreeSet::new(),
        }
    }

    /// Sends `call`, checks that it answers `expected` and that the answer is what the
    /// document says, and returns the body.
    async fn expect(&mut self, expected: u16, call: Call<'_>) -> Value {
        let Call {
            method,
            route,
            path,
            body,
            headers,
            bearer,
        } = call;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let media = match response.headers().get("content-type") {
            Some(t) if t.to_str().is_ok_and(|t| t.starts_with("text/html")) => "text/html",
            _ => "application/json",
        };
        let text = response.text().await.expect("body");
        let body: Value = if text.is_empty() {
            Value::Null
        } else if media == "text/html" {
            Value::String(text)
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        assert_eq!(status, expected, "{method} {path}: {body}");
        self.check(&method, route, status, media, &body);
        body
    }

    fn check(&mut self, method: &Method, route: &str, status: u16, media: &str, body: &Value) {
        let verb = method.as_str().to_lowercase();
        let operation = &self.document["paths"][route][&verb];
        assert!(
            operation.is_object(),
            "{method} {route} is not in the document"
        );
        let mut pointer = format!(
            "/paths/{}/{verb}/responses/{status}",
            // A JSON pointer (`~`, `/` escaped) inside a URI fragment (braces encoded).
            route
                .replace('~', "~0")
                .replace('/', "~1")
                .replace('{', "%7B")
                .replace('}', "%7D")
        );
        let mut response = &self.document["paths"][route][&verb]["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {route} answered {status}, which the document does not list: {body}"
        );
        if let Some(reference) = response["$ref"].as_str() {
            let target = reference.trim_start_matches('#');
            pointer = target.to_owned();
            response = self.document.pointer(target).expect("the $ref resolves");
        }
        let schema = &response["content"][media]["schema"];
        if schema.is_null() {
            assert!(
                body.is_null(),
                "{method} {route} {status} documents no body, got {body}"
            );
        } else {
            // The whole document is the root, so the schema's `$ref`s resolve in it.
            let mut root = self.document.clone();
            root["$ref"] = json!(format!(
                "#{pointer}/content/{}/schema",
                media.replace('/', "~1")
            ));
            let validator = jsonschema::draft202012::new(&root)
                .unwrap_or_else(|e| panic!("{method} {route} {status}: bad schema: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {route} {status} does not match the document: {errors:?}\n{body}"
            );
        }
        self.covered.insert(format!("{} {route}", method.as_str()));
    }

    /// Every operation in the document.
    fn operations(&self) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (route, item) in self.document["paths"].as_object().expect("paths") {
            for verb in item.as_object().expect("path item").keys() {
                all.insert(format!("{} {route}", verb.to_uppercase()));
            }
        }
        all
    }
}

/// One request: the documented route, the path that fills it in, and what it carries.
struct Call<'a> {
    method: Method,
    route: &'a str,
    path: String,
    body: Option<Value>,
    headers: Vec<(&'a str, String)>,
    bearer: Option<String>,
}

impl<'a> Call<'a> {
    fn new(method: Method, route: &'a str) -> Self {
        Self {
            method,
            route,
            path: route.to_owned(),
            body: None,
            headers: Vec::new(),
            bearer: None,
        }
    }

    fn get(route: &'a str) -> Self {
        Self::new(Method::GET, route)
    }

    fn post(route: &'a str) -> Self {
        Self::new(Method::POST, route)
    }

    fn delete(route: &'a str) -> Self {
        Self::new(Method::DELETE, route)
    }

    /// The path, when the route has parameters or a query.
    fn at(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    fn header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let outbox = std::env::temp_dir().join(format!("celeriac-openapi-outbox-{}", free_port()));
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    let mut api = Contract::new(&server);
    api.expect(200, Call::get("/api/health/")).await;
    let (token, email) = accounts(&mut api, &outbox).await;
    shop(&mut api, &token).await;
    wellness(&mut api, &token).await;
    recall(&mut api, &token).await;
    calendar(&mut api, &token).await;
    let new_email = unique_email("openapi-new");
    let change = Call::post("/api/v1/user/email").json(json!({"new_email": new_email}));
    api.expect(202, change.bearer(&token)).await;
    api.expect(204, Call::post("/api/v1/user/logout").bearer(&token))
        .await;
    password_reset(&mut api, &outbox, &email).await;
    assert_eq!(
        api.covered,
        api.operations(),
        "every documented operation is called\n{}",
        server.log()
    );
}

/// Registers, follows the email task and the confirmation link, logs in and refreshes;
/// the access token and the account's address.
async fn accounts(api: &mut Contract, outbox: &Path) -> (String, String) {
    let email = unique_email("openapi");
    let password = "green tea at five";
    let registration = "/api/v1/user/registration";
    let registered = api
        .expect(
            201,
            Call::post(registration)
                .json(json!({"email": email, "password": password, "name": "Mei"})),
        )
        .await;
    api.expect(400, Call::post(registration).json(json!({"email": "no"})))
        .await;
    let task = registered["confirmation"]["email_task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    for route in ["/task/{task_id}/status", "/webhook/task-status/{task_id}"] {
        api.expect(200, Call::get(route).at(route.replace("{task_id}", &task)))
            .await;
        let unknown = route.replace("{task_id}", "5d1c9a77-0000-4000-8000-000000000000");
        api.expect(404, Call::get(route).at(unknown)).await;
    }
    // The registration's mail first, so that its link is the one the resend kills (the
    // two mails' tasks would otherwise race into the outbox).
    let first = confirmation_link(&outbox_text(outbox, &email).await).expect("a link");
    let resend = "/api/v1/user/registration/resend";
    api.expect(202, Call::post(resend).json(json!({"email": email})))
        .await;
    api.expect(400, Call::post(resend).json(json!({"email": "no"})))
        .await;
    let marker = "/api/v1/user/confirm?token=";
    let link = new_outbox_link(outbox, &email, marker, &[&first]).await;
    let confirm = "/api/v1/user/confirm";
    api.expect(
        200,
        Call::get(confirm).at(&link[link.find("/api/").expect("path")..]),
    )
    .await;
    api.expect(400, Call::get(confirm)).await;
    api.expect(
        400,
        Call::post(confirm).json(json!({"token": token_of(&first)})),
    )
    .await;
    api.expect(
        200,
        Call::post(confirm).json(json!({"token": token_of(&link)})),
    )
    .await;
    let login = "/api/v1/user/login";
    let session = api
        .expect(
            200,
            Call::post(login).json(json!({"email": email, "password": password})),
        )
        .await;
    let wrong = json!({"email": email, "password": "not it at all"});
    api.expect(401, Call::post(login).json(wrong)).await;
    let refresh = json!({"refresh_token": session["refresh_token"]});
    let session = api
        .expect(200, Call::post("/api/v1/user/refresh").json(refresh))
        .await;
    let token = session["access_token"].as_str().expect("token").to_owned();
    api.expect(200, Call::get("/api/v1/user/me").bearer(&token))
        .await;
    api.expect(401, Call::get("/api/v1/user/me")).await;
    (token, email)
}

/// Asks for a reset of `email`, opens the mailed page, and sets a new password.
async fn password_reset(api: &mut Contract, outbox: &Path, email: &str) {
    let forgot = "/api/v1/user/password/forgot";
    api.expect(202, Call::post(forgot).json(json!({"email": email})))
        .await;
    api.expect(400, Call::post(forgot).json(json!({"email": "no"})))
        .await;
    let marker = "/api/v1/user/password/reset?token=";
    let link = new_outbox_link(outbox, email, marker, &[]).await;
    assert!(link_to(&link, marker).is_some());
    let reset = "/api/v1/user/password/reset";
    api.expect(
        200,
        Call::get(reset).at(&link[link.find("/api/").expect("path")..]),
    )
    .await;
    api.expect(400, Call::get(reset)).await;
    let token = token_of(&link);
    let short = json!({"token": token, "password": "short"});
    api.expect(400, Call::post(reset).json(short)).await;
    let new = json!({"token": token, "password": "a new pot of tea"});
    api.expect(200, Call::post(reset).json(new)).await;
}

async fn shop(api: &mut Contract, token: &str) {
    let catalogue = api.expect(200, Call::get("/api/v1/skus")).await;
    let sku = catalogue["skus"][0]["id"]
        .as_str()
        .expect("a sku")
        .to_owned();
    let order = |quantity: u32| {
        Call::post("/api/v1/orders")
            .json(json!({"items": [{"sku_id": sku, "quantity": quantity}]}))
            .bearer(token)
    };
    let created = api.expect(201, order(1)).await;
    api.expect(409, order(100)).await; // more than the stock
    let id = created["order"]["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    let show = "/api/v1/orders/{order_id}";
    api.expect(
        200,
        Call::get(show)
            .at(format!("/api/v1/orders/{id}"))
            .bearer(token),
    )
    .await;
    let unknown = "/api/v1/orders/5d1c9a77-0000-4000-8000-000000000000";
    api.expect(404, Call::get(show).at(unknown).bearer(token))
        .await;
    let pay = || {
        Call::post("/api/v1/orders/{order_id}/pay")
            .at(format!("/api/v1/orders/{id}/pay"))
            .bearer(token)
    };
    api.expect(200, pay()).await;
    api.expect(409, pay()).await; // already paid
}

async fn wellness(api: &mut Contract, token: &str) {
    let me = api
        .expect(200, Call::get("/api/v1/user/me").bearer(token))
        .await;
    let user = me["user"]["id"].as_str().expect("user id").to_owned();
    let message = json!({"message": "I feel stressed at work"});
    let chat = api
        .expect(200, Call::post("/chat").json(message.clone()).bearer(token))
        .await;
    api.expect(401, Call::post("/chat").json(message)).await;
    let someone_else = json!({"user_id": "someone-else", "message": "hi"});
    api.expect(404, Call::post("/chat").json(someone_else).bearer(token))
        .await;
    let blank = json!({"message": "  "});
    api.expect(400, Call::post("/chat").json(blank).bearer(token))
        .await;
    let task = chat["task_ids"]["extract_topic_from_message"]
        .as_str()
        .expect("task id");
    let status = "/task/{task_id}/status";
    let own_task = status.replace("{task_id}", task);
    api.expect(200, Call::get(status).at(own_task.clone()).bearer(token))
        .await;
    api.expect(404, Call::get(status).at(own_task)).await;
    for route in ["/user/{user_id}/topic", "/user/{user_id}/recommendations"] {
        let own = route.replace("{user_id}", &user);
        api.expect(200, Call::get(route).at(own.clone()).bearer(token))
            .await;
        api.expect(401, Call::get(route).at(own)).await;
        let other = route.replace("{user_id}", "someone-else");
        api.expect(404, Call::get(route).at(other).bearer(token))
            .await;
    }
    for route in ["/content/articles", "/content/videos", "/content/quotes"] {
        api.expect(200, Call::get(route).at(format!("{route}?topic=stress")))
            .await;
    }
}

async fn recall(api: &mut Contract, token: &str) {
    let create = || {
        Call::post("/api/conversations/").json(json!({
            "title": "Q3 report",
            "priority": "high",
            "content": "Anna: We need to submit the Q3 report to the board by Friday."
        }))
    };
    let created = api.expect(201, create().bearer(token)).await;
    api.expect(401, create()).await;
    let id = created["id"].as_i64().expect("id");
    let show = "/api/conversations/{id}/";
    api.expect(
        200,
        Call::get(show)
            .at(format!("/api/conversations/{id}/"))
            .bearer(token),
    )
    .await;
    api.expect(
        404,
        Call::get(show)
            .at("/api/conversations/999999/")
            .bearer(token),
    )
    .await;
}

async fn calendar(api: &mut Contract, token: &str) {
    let me: Value = api
        .http
        .get(format!("{}/api/v1/user/me", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let user = me["user"]["id"].as_str().expect("user id").to_owned();
    let setup = "/webhook/setup/{user_id}";
    api.expect(401, Call::post(setup).at(format!("/webhook/setup/{user}")))
        .await;
    api.expect(
        404,
        Call::post(setup)
            .at("/webhook/setup/someone-else")
            .bearer(token),
    )
    .await;
    api.expect(
        404,
        Call::post(setup)
            .at(format!("/webhook/setup/{user}"))
            .json(json!({"calendar_id": "not-one-of-mine"}))
            .bearer(token),
    )
    .await;
    let channel = api
        .expect(
            201,
            Call::post(setup)
                .at(format!("/webhook/setup/{user}"))
                .bearer(token),
        )
        .await;
    for route in [
        "/webhook/status/{user_id}",
        "/calendar/{user_id}/events",
        "/calendar/{user_id}/calendars",
    ] {
        api.expect(
            200,
            Call::get(route)
                .at(route.replace("{user_id}", &user))
                .bearer(token),
        )
        .await;
        api.expect(401, Call::get(route).at(route.replace("{user_id}", &user)))
            .await;
        api.expect(
            404,
            Call::get(route)
                .at(route.replace("{user_id}", "someone-else"))
                .bearer(token),
        )
        .await;
        api.expect(
            400,
            Call::get(route)
                .at(route.replace("{user_id}", "not%20a%20user"))
                .bearer(token),
        )
        .await;
    }
    let event = "/calendar/{user_id}/events/{event_id}";
    api.expect(
        200,
        Call::get(event)
            .at(format!("/calendar/{user}/events/tea-tasting"))
            .bearer(token),
    )
    .await;
    api.expect(
        404,
        Call::get(event)
            .at(format!("/calendar/{user}/events/no-such"))
            .bearer(token),
    )
    .await;
    api.expect(
        401,
        Call::get(event).at(format!("/calendar/{user}/events/tea-tasting")),
    )
    .await;

    // The fixture's control route (dev only, not in the document) hands back the
    // notification Google would post.
    let changed: Value = api
        .http
        .put(format!(
            "{}/_celeriac/calendar/{user}/events/tea-tasting",
            api.base
        ))
        .bearer_auth(token)
        .json(&json!({"summary": "Tea tasting in the garden"}))
        .send()
        .await
        .expect("PUT")
        .json()
        .await
        .expect("JSON");
    let notification = &changed["notifications"][0];
    let header = |name: &str| notification[name].as_str().unwrap_or_default().to_owned();
    let (id, number) = (header("X-Goog-Channel-ID"), header("X-Goog-Message-Number"));
    let notify = |token: &str, state: &str| {
        Call::post("/webhook/google-calendar")
            .header("X-Goog-Channel-ID", &id)
            .header("X-Goog-Channel-Token", token)
            .header("X-Goog-Resource-ID", &header("X-Goog-Resource-ID"))
            .header("X-Goog-Resource-State", state)
            .header("X-Goog-Message-Number", &number)
    };
    let channel_token = header("X-Goog-Channel-Token");
    api.expect(202, notify(&channel_token, "exists")).await;
    api.expect(202, notify(&channel_token, "exists")).await; // already processed
    api.expect(200, notify(&channel_token, "sync")).await; // acknowledged
    api.expect(403, notify("wrong", "exists")).await;

    let channel_id = channel["channel_id"].as_str().expect("channel id");
    let unsubscribe = "/webhook/unsubscribe/{channel_id}";
    api.expect(
        401,
        Call::delete(unsubscribe).at(format!("/webhook/unsubscribe/{channel_id}")),
    )
    .await;
    api.expect(
        200,
        Call::delete(unsubscribe)
            .at(format!("/webhook/unsubscribe/{channel_id}"))
            .bearer(token),
    )
    .await;
    api.expect(
        404,
        Call::delete(unsubscribe)
            .at(format!("/webhook/unsubscribe/{channel_id}"))
            .bearer(token),
    )
    .await;

    // Connecting: the fixture has no Google account to connect (409); the callback needs
    // a session and a state this session started.
    let connect = "/calendar/{user_id}/connect";
    api.expect(
        409,
        Call::get(connect)
            .at(format!("/calendar/{user}/connect"))
            .bearer(token),
    )
    .await;
    api.expect(
        401,
        Call::get(connect).at(format!("/calendar/{user}/connect")),
    )
    .await;
    api.expect(
        404,
        Call::get(connect)
            .at("/calendar/someone-else/connect")
            .bearer(token),
    )
    .await;
    let callback = "/oauth/google-calendar/callback";
    api.expect(
        401,
        Call::get(callback).at(format!("{callback}?state=abc&code=def")),
    )
    .await;
    api.expect(400, Call::get(callback).at(callback).bearer(token))
        .await;
    api.expect(
        409,
        Call::get(callback)
            .at(format!("{callback}?state=abc&code=def"))
            .bearer(token),
    )
    .await;
    let connection = "/calendar/{user_id}/connection";
    api.expect(
        401,
        Call::delete(connection).at(format!("/calendar/{user}/connection")),
    )
    .await;
    api.expect(
        404,
        Call::delete(connection)
            .at("/calendar/someone-else/connection")
            .bearer(token),
    )
    .await;
    api.expect(
        200,
        Call::delete(connection)
            .at(format!("/calendar/{user}/connection"))
            .bearer(token),
    )
    .await;
}
