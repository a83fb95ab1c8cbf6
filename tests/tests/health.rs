//! `GET /api/health/` through `celeriac dev`, as a user reaches it: on embedded defaults,
//! on the real stand-ins, with Redis down or hanging, and under a loop of requests that
//! must not turn into a loop of probes.

use celeriac_testkit::{DevServer, LlmKatan, OwnRedis, free_port, standin};
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
async fn redis_down_is_503_naming_redis_by_kind_and_the_detail_is_only_logged() {
    let dead = celeriac_testkit::dead_address();
    let server = DevServer::start(&[("REDIS_URL", format!("redis://{dead}"))]);
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["components"]["redis"]["status"], "error");
    assert_eq!(body["components"]["redis"]["error"], "refused", "{body}");
    assert_eq!(body["components"]["database"]["status"], "ok");
    let text = body.to_string();
    for raw in ["refused (", "os error", "Connection", "127.0.0.1"] {
        assert!(!text.contains(raw), "{raw:?} in the public answer: {text}");
    }
    assert!(
        server
            .logs_within("health check failed", std::time::Duration::from_secs(5))
            .await,
        "{}",
        server.log()
    );
    let log = server.log();
    let logged = log
        .lines()
        .find(|l| l.contains("health check failed") && l.contains("redis"))
        .unwrap_or_default();
    assert!(logged.contains("os error"), "the detail is logged: {log}");
}

/// Redis's count of `PING`s served since it started (`INFO commandstats`).
async fn pings(redis: &redis::Client) -> u64 {
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("own redis");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Requests llm-katan has served (its `/stats`).
async fn model_calls(katan: &LlmKatan) -> u64 {
    let stats: Value = reqwest::get(format!("{}/stats", katan.url))
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("stats JSON");
    stats["total"].as_u64().expect("total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_cost_one_redis_ping_and_at_most_one_model_call() {
    let (Some(bin), Some(model)) = (
        standin("CELERIAC_TEST_REDIS_SERVER"),
        standin("CELERIAC_TEST_BEDROCK_MODEL"),
    ) else {
        return;
    };
    let Some(katan) = LlmKatan::start(&[]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-health-redis-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let own = OwnRedis::start(&bin, free_port(), &dir);
    let url = format!("redis://127.0.0.1:{}", own.port);
    let server = DevServer::start(&[
        ("REDIS_URL", url.clone()),
        ("LLM_PROVIDER", "bedrock".into()),
        ("BEDROCK_MODEL_ID", model),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", katan.url.clone()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        // One interval spans the whole test, however slow the machine: "at most once per
        // interval" is then "at most once".
        ("HEALTH_INTERVAL_MS", "600000".into()),
    ]);
    let redis = redis::Client::open(url).expect("redis url");
    let pings_before = pings(&redis).await;
    let calls_before = model_calls(&katan).await;

    // 25 at once (they share one probe in flight), then 25 one after the other.
    let together: Vec<_> = (0..25)
        .map(|_| {
            let url = format!("{}/api/health/", server.url);
            tokio::spawn(async move {
                let response = reqwest::get(url).await.expect("GET /api/health/");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON body"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in together {
        answers.push(answer.await.expect("request task"));
    }
    for _ in 0..25 {
        answers.push(health(&server).await);
    }
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}\n{}", server.log());
        assert_eq!(body["components"]["llm"]["status"], "ok", "{body}");
        assert_eq!(body["components"]["redis"]["adapter"], "redis", "{body}");
    }
    assert_eq!(
        pings(&redis).await - pings_before,
        1,
        "one PING for 50 health requests"
    );
    let model = model_calls(&katan).await - calls_before;
    assert!(model <= 1, "{model} model calls for 50 health requests");
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
    assert_eq!(body["components"]["redis"]["error"], "timeout", "{body}");
}

#[tokio::test]
async fn a_bad_setting_stops_celeriac_dev_with_the_variable_named() {
    let output = std::process::Command::new(celeriac_testkit::workspace_binary("celeriac"))
        .args(["dev", "--port", &free_port().to_string()])
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
        .name(format!("celeriac-health-{}", free_port()))
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
        .args(["dev", "--port", &free_port().to_string()])
        .env_clear()
        .envs(secret_env(arn, moto))
        .output()
        .expect("run celeriac dev");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not RDS-style JSON"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
