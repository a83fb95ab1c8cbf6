//! Conversation recall as a new user tries it through `celeriac dev`: sign up, store a
//! conversation about a deadline, and read back its summary, action items and keywords
//! once the worker has processed it; on embedded defaults (the local engine), on Redis
//! and PostgreSQL, and on llm-katan's Bedrock.

mod support;

use std::path::Path;
use std::time::Duration;

use celeriac_testkit::{DevServer, free_port, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, json_of, unique_email};

const MEETING: &str = "Anna: Thanks for joining. The quarterly report is the main item.\n\
                       Anna: We need to submit the Q3 report to the board by Friday.\n\
                       Ben: I'll send the marketing numbers to Carla by Wednesday.\n\
                       Carla: The dashboard demo went well.";

/// Polls the conversation until the worker has stored its analysis.
async fn processed(client: &Client, token: &str, id: i64) -> Value {
    for _ in 0..300 {
        let response = client
            .get(&format!("/api/conversations/{id}/"), Some(token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let conversation = json_of(response).await;
        if conversation["ai_processed"] == true {
            return conversation;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("conversation {id} was not processed within 30 s");
}

/// Sign up two users; the first stores a conversation and reads its analysis; the
/// second cannot see it. Returns the processed conversation.
async fn store_and_read(server: &DevServer, outbox: &Path) -> Value {
    let client = Client::new(server);
    let mei = client.signed_up(outbox, &unique_email("mei")).await;
    let ken = client.signed_up(outbox, &unique_email("ken")).await;

    let body = json!({"title": "Q3 report", "content": MEETING, "priority": "high"});
    let anonymous = client.post("/api/conversations/", body.clone(), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad = client
        .post("/api/conversations/", json!({"content": ""}), Some(&mei))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let created = client.post("/api/conversations/", body, Some(&mei)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_of(created).await;
    assert_eq!(created["processing"], "queued", "{created}");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["ai_processed"], false);
    let id = created["id"].as_i64().expect("id");
    let task = created["task_id"].as_str().expect("task id");
    let status = client.task_finished(task).await;
    assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());

    let conversation = processed(&client, &mei, id).await;
    assert!(
        conversation["ai_summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let other = client
        .get(&format!("/api/conversations/{id}/"), Some(&ken))
        .await;
    assert_eq!(
        other.status(),
        StatusCode::NOT_FOUND,
        "only the owner sees it"
    );
    conversation
}

fn outbox() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("celeriac-recall-outbox-{}", free_port()))
}

#[tokio::test]
async fn a_conversation_about_a_deadline_on_embedded_defaults() {
    let outbox = outbox();
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    let conversation = store_and_read(&server, &outbox).await;
    let items = conversation["ai_action_items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        items.iter().any(|i| i
            .as_str()
            .is_some_and(|i| i.contains("Q3 report") && i.contains("by Friday"))),
        "the deadline is an action item: {conversation}"
    );
    assert!(
        conversation["ai_keywords"].as_array().is_some_and(|k| k
            .iter()
            .any(|k| k.as_str().is_some_and(|k| k.contains("report")))),
        "{conversation}"
    );
    assert_eq!(conversation["ai_model"], "local-v2");
    let _ = std::fs::remove_dir_all(&outbox);
}

#[tokio::test]
async fn the_same_with_redis_postgres_and_bedrock_on_llm_katan() {
    let (Some(redis), Some(db), Some(katan), Some(model)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
        standin("CELERIAC_TEST_BEDROCK_URL"),
        standin("CELERIAC_TEST_BEDROCK_MODEL"),
    ) else {
        return;
    };
    // A fresh Redis database: no login counts left from an earlier run.
    let mut conn = redis::Client::open(format!("{}/9", redis.trim_end_matches('/')))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let outbox = outbox();
    let server = DevServer::start(&[
        // Redis database 9 is this test's: login limits count per client IP.
        ("REDIS_URL", format!("{}/9", redis.trim_end_matches('/'))),
        ("DATABASE_URL", db),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
        ("LLM_PROVIDER", "bedrock".into()),
        ("BEDROCK_MODEL_ID", model),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", katan),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ]);
    let conversation = store_and_read(&server, &outbox).await;
    // llm-katan fills the analysis tool's schema: its summary is `test_summary`.
    assert_eq!(conversation["ai_summary"], "test_summary", "{conversation}");
    assert_eq!(
        conversation["ai_model"],
        standin("CELERIAC_TEST_BEDROCK_MODEL").unwrap_or_default()
    );
    let health = json_of(Client::new(&server).get("/api/health/", None).await).await;
    for component in ["database", "redis", "llm", "queue"] {
        assert_eq!(health["components"][component]["status"], "ok", "{health}");
    }
    let _ = std::fs::remove_dir_all(&outbox);
}
