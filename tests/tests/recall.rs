//! Conversation recall as a new user tries it through `celeriac dev`: sign up, store a
//! conversation about a deadline, and read back its summary, action items and keywords
//! once the worker has processed it; on embedded defaults (the local engine), on Redis
//! and PostgreSQL, and on llm-katan's Bedrock; and a conversation created while the queue
//! refuses messages, stored and processed after the retry schedule runs.

mod support;

use std::path::Path;
use std::time::Duration;

use celeriac_testkit::{DevServer, free_port, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, json_of, outbox_dir, signed_up, unique_email};

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
    let mei = signed_up(&client, outbox, &unique_email("mei")).await;
    let ken = signed_up(&client, outbox, &unique_email("ken")).await;

    let body = json!({"title": "Q3 report", "content": MEETING, "priority": "high"});
    let anonymous = client.post("/api/conversations/", body.clone(), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad = client
        .post("/api/conversations/", json!({"content": ""}), Some(&mei))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let error = json_of(bad).await;
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("content")),
        "{error}"
    );

    let created = client.post("/api/conversations/", body, Some(&mei)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_of(created).await;
    assert_eq!(created["processing"], "queued", "{created}");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["ai_processed"], false);
    let id = created["id"].as_i64().expect("id");
    let task = created["task_id"].as_str().expect("task id");
    let status = client.task_finished_as(task, Some(&mei)).await;
    assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());
    // The analysis is mei's: neither ken nor an anonymous caller sees its state.
    for bearer in [Some(ken.as_str()), None] {
        let response = client.get(&format!("/task/{task}/status"), bearer).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bearer:?}");
    }

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

#[tokio::test]
async fn a_conversation_about_a_deadline_on_embedded_defaults() {
    let outbox = outbox_dir("recall");
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
    assert_eq!(conversation["ai_model"], celeriac_llm::local::MODEL);
    let health = json_of(Client::new(&server).get("/api/health/", None).await).await;
    for component in ["database", "redis", "llm", "queue"] {
        assert_eq!(health["components"][component]["status"], "ok", "{health}");
    }
    let _ = std::fs::remove_dir_all(&outbox);
}

/// Runs one Redis command on `conn`.
async fn redis_command(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(conn).await.expect("redis command");
}

#[tokio::test]
async fn a_conversation_created_while_the_queue_refuses_is_processed_after_the_retry_schedule() {
    // Tasks travel on Redis Streams of a redis-server of this test's own, so the test can
    // make the broker refuse messages: an ACL that denies XADD, the command that enqueues,
    // while sessions (plain keys on the same server) keep working.
    let Some(bin) = standin("CELERIAC_TEST_REDIS_SERVER") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("celeriac-recall-redis-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("redis dir");
    let redis_server = celeriac_testkit::OwnRedis::start(&bin, free_port(), &dir);
    let url = format!("redis://127.0.0.1:{}", redis_server.port);
    let outbox = outbox_dir("recall");
    let server = DevServer::start(&[
        ("REDIS_URL", url.clone()),
        ("TASK_TRANSPORT", "redis".into()),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
    ]);
    let client = Client::new(&server);
    let mei = signed_up(&client, &outbox, &unique_email("mei")).await;
    let mut conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");

    redis_command(&mut conn, &["ACL", "SETUSER", "default", "-xadd"]).await;
    let created = client
        .post(
            "/api/conversations/",
            json!({"content": MEETING, "priority": "low"}),
            Some(&mei),
        )
        .await;
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "creation survives the queue"
    );
    let created = json_of(created).await;
    assert_eq!(created["processing"], "deferred", "{created}");
    assert_eq!(created["ai_enqueue_pending"], true);
    assert!(created["task_id"].is_null(), "{created}");
    let id = created["id"].as_i64().expect("id");
    let stored = json_of(
        client
            .get(&format!("/api/conversations/{id}/"), Some(&mei))
            .await,
    )
    .await;
    assert_eq!(
        (&stored["ai_processed"], &stored["ai_enqueue_pending"]),
        (&json!(false), &json!(true)),
        "{stored}"
    );

    // The queue takes messages again; the retry schedule's run (as beat fires it every
    // 5 minutes) enqueues the deferred analysis, and the worker processes it.
    redis_command(&mut conn, &["ACL", "SETUSER", "default", "+xadd"]).await;
    let task = client.call_task("retry_deferred_conversations", None).await;
    let status = client.task_finished(&task).await;
    assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());
    assert_eq!(status["result"]["enqueued"], json!([id]), "{status}");

    let conversation = processed(&client, &mei, id).await;
    assert_eq!(conversation["ai_enqueue_pending"], false, "{conversation}");
    assert!(
        conversation["ai_action_items"]
            .as_array()
            .is_some_and(|items| items
                .iter()
                .any(|i| i.as_str().is_some_and(|i| i.contains("by Friday")))),
        "{conversation}"
    );
    drop(server);
    drop(redis_server);
    let _ = std::fs::remove_dir_all(&outbox);
    let _ = std::fs::remove_dir_all(&dir);
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
    let outbox = outbox_dir("recall");
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
