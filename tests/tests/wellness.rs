//! The wellness chat as a new user tries it through `celeriac dev`: a Russian message gets
//! a reply at once, its topic lands shortly after through the worker, and the
//! recommendations and content follow the topic. On embedded defaults (the local engine),
//! and on Redis, PostgreSQL and llm-katan's Bedrock.

mod support;

use celeriac_testkit::{DevServer, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, json_of};

/// Posts a chat message; returns the answer after checking what every answer carries.
async fn chat(client: &Client, user: &str, message: &str) -> Value {
    let response = client
        .post("/chat", json!({"user_id": user, "message": message}), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_of(response).await;
    assert!(
        answer["reply"]
            .as_str()
            .is_some_and(|r| !r.trim().is_empty()),
        "a reply now: {answer}"
    );
    for task in ["extract_topic_from_message", "update_user_recommendations"] {
        assert!(
            answer["task_ids"][task].is_string(),
            "{task} was enqueued: {answer}"
        );
    }
    answer
}

/// Bad input is refused with a 400 that names the field, and starts nothing.
async fn refuses_bad_input(client: &Client, user: &str) {
    for (body, field) in [
        (json!({"user_id": user, "message": "   "}), "message"),
        (json!({"user_id": "a b", "message": "hi"}), "user_id"),
        (json!({"user_id": user}), "message"),
        (
            json!({"user_id": user, "message": "hi", "extra": true}),
            "extra",
        ),
    ] {
        let response = client.post("/chat", body.clone(), None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = json_of(response).await;
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{body}: {error}"
        );
    }
    let response = client.get("/content/videos?topic=", None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client.get("/user/a%20b/topic", None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// The whole flow on the local engine, whose answers are known: the Russian stress
/// message's topic is `стресс` (lexicon id `stress`).
async fn russian_message_on_the_local_engine(server: &DevServer) {
    let client = Client::new(server);
    let user = format!("u{}", celeriac_testkit::free_port());
    refuses_bad_input(&client, &user).await;

    let first = chat(&client, &user, "Я чувствую стресс на работе").await;
    assert_eq!(first["language"], "ru");
    assert!(
        first["topic"].is_null(),
        "no topic before the first message: {first}"
    );
    let reply = first["reply"].as_str().unwrap_or_default();
    assert!(
        reply
            .chars()
            .any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)),
        "a Russian message gets a Russian reply: {reply}"
    );
    let topic_task = first["task_ids"]["extract_topic_from_message"]
        .as_str()
        .unwrap_or_default();
    let status = client.task_finished(topic_task).await;
    assert_eq!(status["state"], "SUCCESS", "{status}");
    assert_eq!(status["result"]["topic"], "стресс", "{status}");

    let topic = json_of(client.get(&format!("/user/{user}/topic"), None).await).await;
    assert_eq!(topic["topic"], "стресс", "{topic}");
    assert_eq!(topic["topic_id"], "stress");
    assert_eq!(topic["language"], "ru");

    let recommendations_task = first["task_ids"]["update_user_recommendations"]
        .as_str()
        .unwrap_or_default();
    let status = client.task_finished(recommendations_task).await;
    assert_eq!(status["state"], "SUCCESS", "{status}");
    let recommendations = json_of(
        client
            .get(&format!("/user/{user}/recommendations"), None)
            .await,
    )
    .await;
    assert_eq!(
        recommendations["topic"]["label"], "стресс",
        "{recommendations}"
    );
    let videos = recommendations["videos"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!videos.is_empty(), "{recommendations}");
    assert!(videos.iter().all(|v| {
        v["topics"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("stress")))
    }));
    assert_eq!(
        videos[0]["language"], "ru",
        "Russian first for a Russian user"
    );
    assert!(
        recommendations["quote"]["body"].is_string(),
        "{recommendations}"
    );

    // The next message is answered knowing the topic.
    let second = chat(&client, &user, "Как с этим справиться?").await;
    assert_eq!(second["topic"], "стресс", "{second}");
    // A follow-up that names no topic keeps the conversation's subject.
    let follow_up = second["task_ids"]["extract_topic_from_message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(client.task_finished(follow_up).await["state"], "SUCCESS");
    let topic = json_of(client.get(&format!("/user/{user}/topic"), None).await).await;
    assert_eq!(topic["topic"], "стресс", "{topic}");

    // Content by topic, in either language.
    let videos = json_of(client.get("/content/videos?topic=стресс", None).await).await;
    assert_eq!(videos["topic_id"], "stress");
    assert!(videos["videos"].as_array().is_some_and(|v| !v.is_empty()));
    let quotes = client.get("/content/quotes?topic=sleep", None).await;
    assert_eq!(quotes.status(), StatusCode::OK);
    let quotes = json_of(quotes).await;
    assert!(quotes["quotes"][0]["quote"]["body"].is_string(), "{quotes}");
    let again = json_of(client.get("/content/quotes?topic=sleep", None).await).await;
    assert_eq!(
        again["quotes"], quotes["quotes"],
        "the day's quote is cached"
    );
    let articles = json_of(client.get("/content/articles?topic=sleep", None).await).await;
    assert!(
        articles["articles"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(
        articles["article_of_the_day"]["title"].is_string(),
        "{articles}"
    );
    let daily = json_of(client.get("/content/quotes", None).await).await;
    assert!(
        daily["quotes"].as_array().is_some_and(|q| !q.is_empty()),
        "the daily quotes: {daily}"
    );
}

#[tokio::test]
async fn chat_topic_and_recommendations_on_embedded_defaults() {
    let server = DevServer::start(&[]);
    russian_message_on_the_local_engine(&server).await;
}

#[tokio::test]
async fn the_same_with_redis_postgres_and_the_local_engine() {
    let (Some(redis), Some(db)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    let server = DevServer::start(&[
        // A Redis database of its own (6), so chat limits and cached content are this
        // test's alone; and tasks travel on Redis Streams there.
        ("REDIS_URL", format!("{}/6", redis.trim_end_matches('/'))),
        ("TASK_TRANSPORT", "redis".into()),
        ("DATABASE_URL", db),
        ("LLM_PROVIDER", "local".into()),
    ]);
    russian_message_on_the_local_engine(&server).await;
}

/// Through llm-katan's Bedrock Converse: the reply is the stand-in's echo, the topic its
/// tool answer, and both travel the same path as on the real Bedrock.
#[tokio::test]
async fn chat_and_topic_through_bedrock_on_llm_katan() {
    let (Some(redis), Some(katan), Some(model)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_BEDROCK_URL"),
        standin("CELERIAC_TEST_BEDROCK_MODEL"),
    ) else {
        return;
    };
    let server = DevServer::start(&[
        ("REDIS_URL", format!("{}/7", redis.trim_end_matches('/'))),
        ("LLM_PROVIDER", "bedrock".into()),
        ("BEDROCK_MODEL_ID", model.clone()),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", katan),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("CELERIAC_METRICS", "emf".into()),
    ]);
    let client = Client::new(&server);
    let user = format!("k{}", celeriac_testkit::free_port());
    let message = "Я чувствую стресс на работе";
    let answer = chat(&client, &user, message).await;
    let reply = answer["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains(message),
        "llm-katan's echo carries the user's message: {reply}"
    );
    let topic_task = answer["task_ids"]["extract_topic_from_message"]
        .as_str()
        .unwrap_or_default();
    let status = client.task_finished(topic_task).await;
    assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());
    let stored = json_of(client.get(&format!("/user/{user}/topic"), None).await).await;
    assert_eq!(
        stored["topic"], status["result"]["topic"],
        "the endpoint shows the topic the task stored"
    );
    assert!(stored["topic"].as_str().is_some_and(|t| !t.is_empty()));
    let health = json_of(client.get("/api/health/", None).await).await;
    assert_eq!(
        health["components"]["llm"]["adapter"], "bedrock",
        "{health}"
    );
    assert_eq!(health["components"]["llm"]["status"], "ok", "{health}");
    // The topic call's tokens, as a CloudWatch metric per model and operation.
    let log = server.log();
    let usage: Value = log
        .lines()
        .filter(|line| line.starts_with('{') && line.contains("\"InputTokens\""))
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no token metric in the log:\n{log}"));
    assert_eq!(
        usage["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Service", "Model", "Operation"]])
    );
    assert_eq!(usage["Model"], model.as_str());
    assert!(
        usage["InputTokens"].as_f64().is_some_and(|n| n > 0.0),
        "{usage}"
    );
}
