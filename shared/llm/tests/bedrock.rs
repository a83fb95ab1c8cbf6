//! The Bedrock adapter against llm-katan's Bedrock Converse provider: typed answers from
//! its tool-use path, and the failures it injects (overload, throttling, text where a
//! tool call was required, slowness).

use std::time::Duration;

use celeriac_llm::{
    BedrockLlm, BedrockSettings, ChatRequest, ContentKind, ContentRequest, Language, Llm, LlmError,
};
use celeriac_testkit::{LlmKatan, bedrock_sdk, sdk_at, standin};

fn model() -> String {
    standin("CELERIAC_TEST_BEDROCK_MODEL").unwrap_or_default()
}

/// Quick settings: short backoff, so retries do not slow the suite.
fn settings(max_attempts: u32, attempt_timeout: Duration) -> BedrockSettings {
    BedrockSettings {
        max_attempts,
        attempt_timeout,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..BedrockSettings::new(model())
    }
}

/// The adapter over `katan`.
async fn llm_at(katan: &LlmKatan, settings: BedrockSettings) -> BedrockLlm {
    BedrockLlm::new(&sdk_at(katan.url.clone()).await, settings)
}

const MEETING: &str = "Anna: We need to submit the report by Friday.\nBen: I'll draft it today.";

#[tokio::test]
async fn typed_answers_through_tool_use_and_usage_counted() {
    let Some(sdk) = bedrock_sdk().await else {
        return;
    };
    let llm = BedrockLlm::new(&sdk, settings(4, Duration::from_secs(10)));

    // llm-katan fills a forced tool's schema with `test_<field>` strings and empty arrays.
    let analysis = llm.analyse_conversation(MEETING).await.expect("analysis");
    assert_eq!(analysis.summary, "test_summary");
    assert!(analysis.action_items.is_empty() && analysis.keywords.is_empty());
    let topic = llm
        .extract_topic("Я чувствую стресс на работе")
        .await
        .expect("topic");
    assert_eq!(
        (topic.label.as_str(), topic.language),
        ("test_label", Language::Ru)
    );
    let request = |kind| ContentRequest {
        kind,
        topic: "sleep".into(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("date"),
        language: Language::En,
    };
    let article = llm
        .generate_content(&request(ContentKind::Article))
        .await
        .expect("article");
    assert_eq!(article.title.as_deref(), Some("test_title"));
    assert_eq!(article.body, "test_body");
    let quote = llm
        .generate_content(&request(ContentKind::Quote))
        .await
        .expect("quote");
    assert_eq!(
        (quote.title, quote.author.as_deref()),
        (None, Some("test_author"))
    );

    let reply = llm
        .chat_reply(&ChatRequest {
            message: "I can't sleep".into(),
            topic: Some("sleep".into()),
        })
        .await
        .expect("reply");
    assert!(reply.text.contains("I can't sleep"), "{}", reply.text);

    let usage = llm.usage();
    assert_eq!((usage.calls, usage.attempts, usage.retried), (5, 5, 0));
    assert!(
        usage.input_tokens > 0 && usage.output_tokens > 0,
        "{usage:?}"
    );
}

#[tokio::test]
async fn an_overloaded_model_is_retried_until_every_call_succeeds() {
    let Some(katan) = LlmKatan::start(&["--max-inflight", "1", "--latency-ms", "300"]) else {
        return;
    };
    // Four calls share one slot of 300 ms: the backoff must be able to outwait the other
    // three, so it is longer here than in the other cases.
    let llm = llm_at(
        &katan,
        BedrockSettings {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(2),
            ..settings(10, Duration::from_secs(5))
        },
    )
    .await;
    let calls = (0..4).map(|_| llm.analyse_conversation(MEETING));
    for result in futures::future::join_all(calls).await {
        assert_eq!(
            result.expect("succeeds after retries").summary,
            "test_summary"
        );
    }
    let usage = llm.usage();
    assert_eq!(usage.calls, 4);
    assert!(
        usage.retried > 0,
        "four concurrent calls on one slot retried: {usage:?}"
    );
    assert_eq!(usage.attempts, 4 + usage.retried);
}

#[tokio::test]
async fn throttling_that_does_not_end_is_reported_after_the_last_attempt() {
    let Some(katan) = LlmKatan::start(&["--rate-limit-after", "1"]) else {
        return;
    };
    let llm = llm_at(&katan, settings(4, Duration::from_secs(5))).await;
    llm.extract_topic("sleep")
        .await
        .expect("the first request is served");
    let err = llm
        .extract_topic("sleep")
        .await
        .expect_err("every later request is throttled");
    assert!(matches!(err, LlmError::Throttled(_)), "{err:?}");
    assert!(err.is_retryable(), "a task may try again later");
    let usage = llm.usage();
    assert_eq!((usage.calls, usage.attempts, usage.retried), (2, 5, 3));
}

#[tokio::test]
async fn a_text_answer_where_a_tool_call_was_required_is_malformed() {
    let Some(katan) = LlmKatan::start(&["--no-auto-tool-providers", "bedrock"]) else {
        return;
    };
    let llm = llm_at(&katan, settings(4, Duration::from_secs(5))).await;
    let err = llm
        .analyse_conversation(MEETING)
        .await
        .expect_err("no tool use");
    assert!(
        matches!(&err, LlmError::Malformed(m) if m.contains("record_analysis")),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let err = llm.extract_topic("sleep").await.expect_err("no tool use");
    assert!(
        matches!(&err, LlmError::Malformed(m) if m.contains("record_topic")),
        "{err:?}"
    );
    assert_eq!(llm.usage().attempts, 2, "a malformed answer is not retried");
}

#[tokio::test]
async fn a_model_slower_than_the_attempt_timeout_is_unavailable() {
    let Some(katan) = LlmKatan::start(&["--latency-ms", "3000"]) else {
        return;
    };
    let llm = llm_at(&katan, settings(2, Duration::from_millis(300))).await;
    let err = llm.extract_topic("sleep").await.expect_err("too slow");
    assert!(matches!(err, LlmError::Unavailable(_)), "{err:?}");
    assert_eq!(llm.usage().attempts, 2);
}
