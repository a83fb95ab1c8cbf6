//! The OpenAPI document against the running system: every documented operation is called
//! on `celeriac dev` (embedded defaults), as a client would, and each answer is checked
//! against the document: its status must be one the operation lists, and its JSON body
//! must match that response's schema.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use celeriac_testkit::{DevServer, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use support::{confirmation_link, outbox_text, unique_email};

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

    /// Calls `method path` (an instance of the documented `route`), checks the answer
    /// against the document, and returns its status and body.
    async fn call(
        &mut self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        self.check(&method, route, status, &body);
        (status, body)
    }

    fn check(&mut self, method: &Method, route: &str, status: u16, body: &Value) {
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
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(
                body.is_null(),
                "{method} {route} {status} documents no body, got {body}"
            );
        } else {
            // The whole document is the root, so the schema's `$ref`s resolve in it.
            let mut root = self.document.clone();
            root["$ref"] = json!(format!("#{pointer}/content/application~1json/schema"));
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

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let outbox = std::env::temp_dir().join(format!("celeriac-openapi-outbox-{}", free_port()));
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    let mut api = Contract::new(&server);
    platform_and_accounts(&mut api, &outbox).await;
    assert_eq!(
        api.covered,
        api.operations(),
        "every documented operation is called\n{}",
        server.log()
    );
}

async fn platform_and_accounts(api: &mut Contract, outbox: &Path) {
    use Method as M;
    let (status, _) = api
        .call(M::GET, "/api/health/", "/api/health/", None, &[], None)
        .await;
    assert_eq!(status, 200);

    // Accounts: register, the email task's status, confirm, log in.
    let email = unique_email("openapi");
    let password = "green tea at five";
    let route = "/api/v1/user/registration";
    let (status, registered) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"email": email, "password": password, "name": "Mei"})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"email": "no"})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 400);
    let task = registered["confirmation"]["email_task_id"]
        .as_str()
        .expect("task id")
        .to_owned();
    for route in ["/task/{task_id}/status", "/webhook/task-status/{task_id}"] {
        let path = route.replace("{task_id}", &task);
        let (status, _) = api.call(M::GET, route, &path, None, &[], None).await;
        assert_eq!(status, 200);
        let unknown = route.replace("{task_id}", "5d1c9a77-0000-4000-8000-000000000000");
        let (status, _) = api.call(M::GET, route, &unknown, None, &[], None).await;
        assert_eq!(status, 404);
    }
    let link = confirmation_link(&outbox_text(outbox, &email).await).expect("a link");
    let confirm = &link[link.find("/api/").expect("path")..];
    let (status, _) = api
        .call(M::GET, "/api/v1/user/confirm", confirm, None, &[], None)
        .await;
    assert_eq!(status, 200);
    let route = "/api/v1/user/login";
    let (status, session) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"email": email, "password": password})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"email": email, "password": "not it at all"})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 401);
    let route = "/api/v1/user/refresh";
    let (status, session) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"refresh_token": session["refresh_token"]})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let token = session["access_token"].as_str().expect("token").to_owned();
    let route = "/api/v1/user/me";
    let (status, _) = api
        .call(M::GET, route, route, None, &[], Some(&token))
        .await;
    assert_eq!(status, 200);
    let (status, _) = api.call(M::GET, route, route, None, &[], None).await;
    assert_eq!(status, 401);

    shop(api, &token).await;
    wellness(api).await;
    recall(api, &token).await;
    calendar(api).await;

    let route = "/api/v1/user/email";
    let new_email = unique_email("openapi-new");
    let (status, _) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"new_email": new_email})),
            &[],
            Some(&token),
        )
        .await;
    assert_eq!(status, 202);
    let route = "/api/v1/user/logout";
    let (status, _) = api
        .call(M::POST, route, route, None, &[], Some(&token))
        .await;
    assert_eq!(status, 204);
}

async fn shop(api: &mut Contract, token: &str) {
    use Method as M;
    let (status, catalogue) = api
        .call(M::GET, "/api/v1/skus", "/api/v1/skus", None, &[], None)
        .await;
    assert_eq!(status, 200);
    let sku = catalogue["skus"][0]["id"]
        .as_str()
        .expect("a sku")
        .to_owned();
    let route = "/api/v1/orders";
    let (status, created) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"items": [{"sku_id": sku, "quantity": 1}]})),
            &[],
            Some(token),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .call(
            M::POST,
            route,
            route,
            Some(json!({"items": [{"sku_id": sku, "quantity": 100}]})),
            &[],
            Some(token),
        )
        .await;
    assert_eq!(status, 409, "more than the stock");
    let id = created["order"]["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    let route = "/api/v1/orders/{order_id}";
    let (status, _) = api
        .call(
            M::GET,
            route,
            &format!("/api/v1/orders/{id}"),
            None,
            &[],
            Some(token),
        )
        .await;
    assert_eq!(status, 200);
    let unknown = "/api/v1/orders/5d1c9a77-0000-4000-8000-000000000000";
    let (status, _) = api
        .call(M::GET, route, unknown, None, &[], Some(token))
        .await;
    assert_eq!(status, 404);
    let route = "/api/v1/orders/{order_id}/pay";
    let pay = format!("/api/v1/orders/{id}/pay");
    let (status, _) = api.call(M::POST, route, &pay, None, &[], Some(token)).await;
    assert_eq!(status, 200);
    let (status, _) = api.call(M::POST, route, &pay, None, &[], Some(token)).await;
    assert_eq!(status, 409, "already paid");
}

async fn wellness(api: &mut Contract) {
    use Method as M;
    let user = format!("openapi{}", free_port());
    let (status, _) = api
        .call(
            M::POST,
            "/chat",
            "/chat",
            Some(json!({"user_id": user, "message": "I feel stressed at work"})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            M::POST,
            "/chat",
            "/chat",
            Some(json!({"user_id": "", "message": "hi"})),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 400);
    for route in ["/user/{user_id}/topic", "/user/{user_id}/recommendations"] {
        let path = route.replace("{user_id}", &user);
        let (status, _) = api.call(M::GET, route, &path, None, &[], None).await;
        assert_eq!(status, 200);
    }
    for route in ["/content/articles", "/content/videos", "/content/quotes"] {
        let (status, _) = api
            .call(
                M::GET,
                route,
                &format!("{route}?topic=stress"),
                None,
                &[],
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
}

async fn recall(api: &mut Contract, token: &str) {
    use Method as M;
    let route = "/api/conversations/";
    let body = json!({
        "title": "Q3 report",
        "priority": "high",
        "content": "Anna: We need to submit the Q3 report to the board by Friday."
    });
    let (status, created) = api
        .call(M::POST, route, route, Some(body.clone()), &[], Some(token))
        .await;
    assert_eq!(status, 201);
    let (status, _) = api.call(M::POST, route, route, Some(body), &[], None).await;
    assert_eq!(status, 401);
    let id = created["id"].as_i64().expect("id");
    let route = "/api/conversations/{id}/";
    let (status, _) = api
        .call(
            M::GET,
            route,
            &format!("/api/conversations/{id}/"),
            None,
            &[],
            Some(token),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            M::GET,
            route,
            "/api/conversations/999999/",
            None,
            &[],
            Some(token),
        )
        .await;
    assert_eq!(status, 404);
}

async fn calendar(api: &mut Contract) {
    use Method as M;
    let user = format!("openapi{}", free_port());
    let route = "/webhook/setup/{user_id}";
    let (status, channel) = api
        .call(
            M::POST,
            route,
            &format!("/webhook/setup/{user}"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 201);
    for route in [
        "/webhook/status/{user_id}",
        "/calendar/{user_id}/events",
        "/calendar/{user_id}/calendars",
    ] {
        let path = route.replace("{user_id}", &user);
        let (status, _) = api.call(M::GET, route, &path, None, &[], None).await;
        assert_eq!(status, 200);
    }
    let route = "/calendar/{user_id}/events/{event_id}";
    let (status, _) = api
        .call(
            M::GET,
            route,
            &format!("/calendar/{user}/events/tea-tasting"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            M::GET,
            route,
            &format!("/calendar/{user}/events/no-such"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The fixture's control route (dev only, not in the document) hands back the
    // notification Google would post.
    let changed: Value = api
        .http
        .put(format!(
            "{}/_celeriac/calendar/{user}/events/tea-tasting",
            api.base
        ))
        .json(&json!({"summary": "Tea tasting in the garden"}))
        .send()
        .await
        .expect("PUT")
        .json()
        .await
        .expect("JSON");
    let notification = &changed["notifications"][0];
    let header = |name: &str| notification[name].as_str().unwrap_or_default().to_owned();
    let (id, token, resource, number) = (
        header("X-Goog-Channel-ID"),
        header("X-Goog-Channel-Token"),
        header("X-Goog-Resource-ID"),
        header("X-Goog-Message-Number"),
    );
    let route = "/webhook/google-calendar";
    let mut headers = vec![
        ("X-Goog-Channel-ID", id.as_str()),
        ("X-Goog-Channel-Token", token.as_str()),
        ("X-Goog-Resource-ID", resource.as_str()),
        ("X-Goog-Resource-State", "exists"),
        ("X-Goog-Message-Number", number.as_str()),
    ];
    let (status, _) = api.call(M::POST, route, route, None, &headers, None).await;
    assert_eq!(status, 202);
    let (status, _) = api.call(M::POST, route, route, None, &headers, None).await;
    assert_eq!(
        status, 202,
        "a repeated message number is already processed"
    );
    headers[3] = ("X-Goog-Resource-State", "sync");
    let (status, _) = api.call(M::POST, route, route, None, &headers, None).await;
    assert_eq!(status, 200, "a sync message is acknowledged");
    headers[3] = ("X-Goog-Resource-State", "exists");
    headers[1] = ("X-Goog-Channel-Token", "wrong");
    let (status, _) = api.call(M::POST, route, route, None, &headers, None).await;
    assert_eq!(status, 403);

    let route = "/webhook/unsubscribe/{channel_id}";
    let channel_id = channel["channel_id"].as_str().expect("channel id");
    let path = format!("/webhook/unsubscribe/{channel_id}");
    let (status, _) = api.call(M::DELETE, route, &path, None, &[], None).await;
    assert_eq!(status, 200);
}
