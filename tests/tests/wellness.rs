//! The wellness chat as a new user tries it through `celeriac dev`: a Russian message gets
//! a reply at once, its topic lands shortly after through the worker, and the
//! recommendations and content follow the topic. On embedded defaults (the local engine),
//! and on Redis, PostgreSQL and llm-katan's Bedrock.

mod support;

use std::path::{Path, PathBuf};

use celeriac_testkit::{DevServer, standin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, json_of, outbox_dir, signed_up, unique_email, user_id_of};

/// A confirmed, logged-in user: (access token, user id).
async fn user(client: &Client, outbox: &Path, name: &str) -> (String, String) {
    let token = signed_up(client, outbox, &unique_email(name)).await;
    let id = user_id_of(client, &token).await;
    (token, id)
}

/// Posts a chat message as `bearer`'s user; returns the answer after checking what every
/// answer carries.
async fn chat(client: &Client, bearer: &str, message: &str) -> Value {
    let response = client
        .post("/chat", json!({"message": message}), Some(bearer))
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
async fn refuses_bad_input(client: &Client, bearer: &str) {
    for (body, field) in [
        (json!({"message": "   "}), "message"),
        (json!({}), "message"),
        (json!({"message": "hi", "extra": true}), "extra"),
    ] {
        let response = client.post("/chat", body.clone(), Some(bearer)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error = json_of(response).await;
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{body}: {error}"
        );
    }
}

/// A message with no letters is still a message: the model answers it (it was a 503).
async fn answers_a_message_without_letters(client: &Client, bearer: &str) {
    for message in ["?", "🙂", "!!!"] {
        let response = client
            .post("/chat", json!({"message": message}), Some(bearer))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{message:?}");
    }
}

/// What a user talks about is theirs: without a session every user route is 401; with
/// another user's session, reading or writing the victim's id is 404 and changes nothing.
async fn a_users_topic_is_theirs_alone(client: &Client, outbox: &Path, victim: (&str, &str)) {
    let (victim_token, victim_id) = victim;
    let before = json_of(
        client
            .get(&format!("/user/{victim_id}/topic"), Some(victim_token))
            .await,
    )
    .await;
    let (other_token, _) = user(client, outbox, "other").await;
    for path in [
        format!("/user/{victim_id}/topic"),
        format!("/user/{victim_id}/recommendations"),
    ] {
        let anonymous = client.get(&path, None).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let other = client.get(&path, Some(&other_token)).await;
        assert_eq!(other.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            !json_of(other).await.to_string().contains("стресс"),
            "{path}: nothing of the victim's in the answer"
        );
    }
    let anonymous = client
        .post("/chat", json!({"message": "I can't sleep"}), None)
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let as_victim = client
        .post(
            "/chat",
            json!({"user_id": victim_id, "message": "I can't sleep at night"}),
            Some(&other_token),
        )
        .await;
    assert_eq!(as_victim.status(), StatusCode::NOT_FOUND);
    let after = json_of(
        client
            .get(&format!("/user/{victim_id}/topic"), Some(victim_token))
            .await,
    )
    .await;
    assert_eq!(after, before, "the victim's topic is unchanged");
}

/// The whole flow on the local engine, whose answers are known: the Russian stress
/// message's topic is `стресс` (lexicon id `stress`).
async fn russian_message_on_the_local_engine(server: &DevServer, outbox: &Path) {
    let client = Client::new(server);
    let (token, user) = user(&client, outbox, "wellness").await;
    refuses_bad_input(&client, &token).await;

    let first = chat(&client, &token, "Я чувствую стресс на работе").await;
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
    let status = client.task_finished_as(topic_task, Some(&token)).await;
    assert_eq!(status["state"], "SUCCESS", "{status}");
    assert_eq!(status["result"]["topic"], "стресс", "{status}");

    let topic = json_of(
        client
            .get(&format!("/user/{user}/topic"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(topic["topic"], "стресс", "{topic}");
    assert_eq!(topic["topic_id"], "stress");
    assert_eq!(topic["language"], "ru");

    let recommendations_task = first["task_ids"]["update_user_recommendations"]
        .as_str()
        .unwrap_or_default();
    let status = client
        .task_finished_as(recommendations_task, Some(&token))
        .await;
    assert_eq!(status["state"], "SUCCESS", "{status}");
    let recommendations = json_of(
        client
            .get(&format!("/user/{user}/recommendations"), Some(&token))
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
    let second = chat(&client, &token, "Как с этим справиться?").await;
    assert_eq!(second["topic"], "стресс", "{second}");
    // A follow-up that names no topic keeps the conversation's subject.
    let follow_up = second["task_ids"]["extract_topic_from_message"]
        .as_str()
        .unwrap_or_default();
    let follow_up = client.task_finished_as(follow_up, Some(&token)).await;
    assert_eq!(follow_up["state"], "SUCCESS");
    let topic = json_of(
        client
            .get(&format!("/user/{user}/topic"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(topic["topic"], "стресс", "{topic}");
    a_users_topic_is_theirs_alone(&client, outbox, (&token, &user)).await;
    answers_a_message_without_letters(&client, &token).await;

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
    let outbox = outbox_dir("wellness");
    let server = DevServer::start(&[("MAIL_OUTBOX_DIR", outbox.display().to_string())]);
    russian_message_on_the_local_engine(&server, &outbox).await;
}

#[tokio::test]
async fn the_same_with_redis_postgres_and_the_local_engine() {
    let (Some(redis), Some(db)) = (
        standin("CELERIAC_TEST_REDIS_URL"),
        standin("CELERIAC_TEST_DATABASE_URL"),
    ) else {
        return;
    };
    let outbox = outbox_dir("wellness-redis");
    let server = DevServer::start(&[
        // A Redis database of its own (6), so chat limits and cached content are this
        // test's alone; and tasks travel on Redis Streams there.
        ("REDIS_URL", format!("{}/6", redis.trim_end_matches('/'))),
        ("TASK_TRANSPORT", "redis".into()),
        ("DATABASE_URL", db),
        ("LLM_PROVIDER", "local".into()),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
    ]);
    russian_message_on_the_local_engine(&server, &outbox).await;
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
    let outbox: PathBuf = outbox_dir("wellness-katan");
    let server = DevServer::start(&[
        ("REDIS_URL", format!("{}/7", redis.trim_end_matches('/'))),
        ("LLM_PROVIDER", "bedrock".into()),
        ("BEDROCK_MODEL_ID", model.clone()),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", katan),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("CELERIAC_METRICS", "emf".into()),
        ("MAIL_OUTBOX_DIR", outbox.display().to_string()),
    ]);
    let client = Client::new(&server);
    let (token, user) = user(&client, &outbox, "katan").await;
    let message = "Я чувствую стресс на работе";
    let answer = chat(&client, &token, message).await;
    let reply = answer["reply"].as_str().unwrap_or_default();
    assert!(
        reply.contains(message),
        "llm-katan's echo carries the user's message: {reply}"
    );
    let topic_task = answer["task_ids"]["extract_topic_from_message"]
        .as_str()
        .unwrap_or_default();
    let status = client.task_finished_as(topic_task, Some(&token)).await;
    assert_eq!(status["state"], "SUCCESS", "{status}\n{}", server.log());
    let stored = json_of(
        client
            .get(&format!("/user/{user}/topic"), Some(&token))
            .await,
    )
    .await;
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
