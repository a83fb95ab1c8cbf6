//! `GET /api/health/` through `celeriac dev`, as a user reaches it: on embedded defaults,
//! on the real stand-ins, and with Redis down or hanging.

use celeriac_testkit::{DevServer, standin};
use serde_json::Value;

async fn health(server: &DevServer) -> (u16, Value) {
    let response = reqwest::get(format!("{}/api/health/", server.url))
        .await
        .unwrap_or_else(|e| panic!("GET /api/health/: {e}\n{}", server.log()));
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn embedded_defaults_are_all_ok() {
    let server = DevServer::start(&[]);
    let (status, body) = health(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_components(
        &body,
        &[
            ("database", "memory"),
            ("redis", "memory"),
            ("queue", "inprocess"),
            ("llm", "local"),
        ],
    );
}

#[tokio::test]
async fn celeriac_dev_serves_the_api_document() {
    let server = DevServer::start(&[]);
    let response = reqwest::get(format!("{}/_celeriac/openapi.yaml", server.url))
        .await
        .expect("GET /_celeriac/openapi.yaml");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    let document: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
    assert_eq!(document["openapi"].as_str(), Some("3.1.0"));
    assert_eq!(
        document["paths"]["/api/health/"]["get"]["operationId"].as_str(),
        Some("health")
    );
}

/// Creates an SQS queue on moto and returns its URL.
async fn create_queue(name: &str) -> Option<String> {
    let sdk = celeriac_testkit::moto_sdk().await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    celeriac_testkit::sqs_queues(&sqs, "", &[name]).await.pop()
}

/// Every listed component reports ok through the named adapter.
fn assert_components(body: &Value, expected: &[(&str, &str)]) {
    for (component, adapter) in expected {
        assert_eq!(
            body["components"][component]["status"], "ok",
            "{component}: {body}"
        );
        assert_eq!(
            body["components"][component]["adapter"], *adapter,
            "{component}: {body}"
        );
    }
}

#[tokio::test]
async fn real_adapters_are_all_ok() {
    let (Some(redis), Some(db), Some(moto), Some(bedrock), Some(model)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
        standin("CELERIAC_TEST_MOTO_URL"),
        standin("CELERIAC_TEST_BEDROCK_URL"),
        standin("CELERIAC_TEST_BEDROCK_MODEL"),
    ) else {
        return;
    };
    let Some(queue) = create_queue("health-system-test").await else {
        return;
    };
    let server = DevServer::start(&[
        ("REDIS_URL", redis),
        ("DATABASE_URL", db),
        ("TASK_QUEUE_URL", queue),
        ("LLM_PROVIDER", "bedrock".into()),
        ("BEDROCK_MODEL_ID", model),
        ("AWS_ENDPOINT_URL_SQS", moto),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]);
    let (status, body) = health(&server).await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_components(
        &body,
        &[
            ("database", "postgres"),
            ("redis", "redis"),
            ("queue", "sqs"),
            ("llm", "bedrock"),
        ],
    );
}

#[tokio::test]
async fn redis_down_is_503_naming_redis_and_the_rest_stays_ok() {
    let server = DevServer::start(&[(
        "REDIS_URL",
        format!("redis://{}", celeriac_testkit::dead_address()),
    )]);
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["components"]["redis"]["status"], "error");
    assert!(
        body["components"]["redis"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(body["components"]["database"]["status"], "ok");
}

#[tokio::test]
async fn a_hanging_redis_is_reported_within_the_health_timeout() {
    // Accepts connections and never answers: the worst kind of outage.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _hold = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            open.push(stream);
        }
    });
    let server = DevServer::start(&[
        ("REDIS_URL", format!("redis://{addr}")),
        ("REDIS_TIMEOUT_MS", "5000".into()),
        ("REDIS_CONNECT_TIMEOUT_MS", "5000".into()),
        ("HEALTH_TIMEOUT_MS", "800".into()),
    ]);
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["components"]["redis"]["error"],
        "no answer within 800 ms"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_celeriac_dev_with_the_variable_named() {
    let output = std::process::Command::new(celeriac_testkit::workspace_binary("celeriac"))
        .args(["dev", "--port", &celeriac_testkit::free_port().to_string()])
        .env_clear()
        .env("REDIS_URL", "http://:secret@example")
        .output()
        .expect("run celeriac dev");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// Stores `secret` in moto's Secrets Manager under a fresh name; its ARN.
async fn stored_secret(secret: &str) -> Option<String> {
    let sdk = celeriac_testkit::moto_sdk().await?;
    let created = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("celeriac-health-{}", celeriac_testkit::free_port()))
        .secret_string(secret)
        .send()
        .await
        .expect("moto stores the secret");
    Some(created.arn.expect("an ARN"))
}

/// `celeriac dev` reading its database from a Secrets Manager secret on moto.
fn secret_env(arn: String, moto: String) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_SECRET_ARN", arn),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

#[tokio::test]
async fn the_database_can_come_from_an_rds_style_secret() {
    let (Some(db), Some(moto)) = (
        standin("CELERIAC_TEST_DATABASE_URL"),
        standin("CELERIAC_TEST_MOTO_URL"),
    ) else {
        return;
    };
    // The secret RDS keeps for a database, with the stand-in's address and credentials.
    let url = reqwest::Url::parse(&db).expect("a database URL");
    let password = url.password().expect("a password").to_owned();
    let secret = serde_json::json!({
        "engine": "postgres",
        "host": url.host_str(),
        "port": url.port(),
        "username": url.username(),
        "password": password,
        "dbname": url.path().trim_start_matches('/'),
    });
    let Some(arn) = stored_secret(&secret.to_string()).await else {
        return;
    };
    let server = DevServer::start(&secret_env(arn, moto));
    let (status, body) = health(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_components(&body, &[("database", "postgres")]);
    assert!(
        !server.log().contains(&password),
        "the password reached the log"
    );
}

#[tokio::test]
async fn a_secret_that_is_not_rds_style_json_stops_celeriac_dev_saying_so() {
    let Some(moto) = standin("CELERIAC_TEST_MOTO_URL") else {
        return;
    };
    let Some(arn) = stored_secret("password=hunter2-in-plain-text").await else {
        return;
    };
    let output = std::process::Command::new(celeriac_testkit::workspace_binary("celeriac"))
        .args(["dev", "--port", &celeriac_testkit::free_port().to_string()])
        .env_clear()
        .envs(secret_env(arn, moto))
        .output()
        .expect("run celeriac dev");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not RDS-style JSON"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
