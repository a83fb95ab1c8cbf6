//! The local engine on the shipped sample conversations and the seed's messages: the
//! answers a user of `celeriac dev` sees must make sense.

use celeriac_llm::{
    ChatRequest, ContentKind, ContentRequest, Language, Llm, LlmError, LocalEngine, topics,
};
use chrono::NaiveDate;

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/samples/{name}.txt", env!("CARGO_MANIFEST_DIR")))
        .expect("sample conversation")
}

#[tokio::test]
async fn a_meeting_about_a_deadline_yields_the_deadline_among_its_action_items() {
    let engine = LocalEngine::new();
    let text = sample("project_meeting_en");
    let analysis = engine.analyse_conversation(&text).await.expect("analysis");
    assert!(
        analysis
            .action_items
            .iter()
            .any(|item| item.contains("Q3 report") && item.contains("by Friday")),
        "{analysis:#?}"
    );
    assert!(
        analysis
            .action_items
            .iter()
            .any(|item| item.contains("marketing numbers") && item.contains("by Wednesday")),
        "the commitment is an action item too: {analysis:#?}"
    );
    assert!(
        !analysis
            .action_items
            .iter()
            .any(|i| i.contains("dashboard")),
        "a remark is not an action: {analysis:#?}"
    );
    assert!(
        analysis.action_items.iter().all(|i| !i.starts_with("Anna")),
        "speakers are stripped: {analysis:#?}"
    );
    assert!(!analysis.summary.is_empty());
    assert!(
        analysis.summary.len() < text.len() / 2,
        "{}",
        analysis.summary
    );
    assert!(
        analysis.keywords.iter().any(|k| k.contains("report")),
        "{:?}",
        analysis.keywords
    );
    assert!(
        (3..=8).contains(&analysis.keywords.len()),
        "{:?}",
        analysis.keywords
    );
}

#[tokio::test]
async fn keywords_are_what_the_meeting_keeps_coming_back_to() {
    let analysis = LocalEngine::new()
        .analyse_conversation(&sample("project_meeting_en"))
        .await
        .expect("analysis");
    for expected in ["board", "marketing numbers"] {
        assert!(
            analysis.keywords.iter().any(|k| k == expected),
            "{expected}: {:?}",
            analysis.keywords
        );
    }
    // The greeting ("Thanks for joining") is said once and is not what the meeting is about.
    assert!(
        analysis.keywords.iter().all(|k| !k.contains("joining")),
        "{:?}",
        analysis.keywords
    );
}

#[tokio::test]
async fn the_russian_meeting_keeps_its_deadline_too() {
    let analysis = LocalEngine::new()
        .analyse_conversation(&sample("project_meeting_ru"))
        .await
        .expect("analysis");
    assert!(
        analysis
            .action_items
            .iter()
            .any(|item| item.contains("отчёт") && item.contains("до пятницы")),
        "{analysis:#?}"
    );
    assert!(
        analysis.keywords.iter().any(|k| k.contains("отчёт")),
        "{:?}",
        analysis.keywords
    );
    assert!(
        analysis.summary.contains("отчёт") && !analysis.summary.contains("Спасибо"),
        "the summary is about the report, not the greeting: {}",
        analysis.summary
    );
}

#[tokio::test]
async fn small_talk_has_no_action_items_and_answers_are_deterministic() {
    let engine = LocalEngine::new();
    let text = sample("weekend_chat_en");
    let first = engine.analyse_conversation(&text).await.expect("analysis");
    assert!(first.action_items.is_empty(), "{first:#?}");
    let second = engine.analyse_conversation(&text).await.expect("analysis");
    assert_eq!(first, second);
    assert!(matches!(
        engine.analyse_conversation("  \n ").await,
        Err(LlmError::Unusable(_))
    ));
}

#[tokio::test]
async fn the_seeds_russian_stress_message_is_about_stress_in_russian() {
    let engine = LocalEngine::new();
    let topic = engine
        .extract_topic("Я чувствую стресс на работе")
        .await
        .expect("topic");
    assert_eq!(topic.label, "стресс");
    assert_eq!(topic.language, Language::Ru);
    assert_eq!(
        topics::lookup(&topic.label).map(|t| t.id.as_str()),
        Some("stress")
    );

    let follow_up = engine
        .extract_topic("Как с этим справиться?")
        .await
        .expect("topic");
    assert_eq!(
        topics::lookup(&follow_up.label).map(|t| t.id.as_str()),
        Some(topics::GENERAL),
        "a message naming no topic gets the general one: {follow_up:?}"
    );

    let english = engine
        .extract_topic("I can't sleep before my exams")
        .await
        .expect("topic");
    assert_eq!(
        (english.label.as_str(), english.language),
        ("sleep", Language::En)
    );

    let reply = engine
        .chat_reply(&ChatRequest {
            message: "Я чувствую стресс на работе".into(),
            topic: None,
        })
        .await
        .expect("reply");
    assert_eq!(reply.language, Language::Ru);
    assert!(reply.text.contains("стресс"), "{}", reply.text);

    // A topic from an earlier English message is named in the Russian reply's language.
    let steered = engine
        .chat_reply(&ChatRequest {
            message: "Мне тяжело".into(),
            topic: Some("sleep".into()),
        })
        .await
        .expect("reply");
    assert!(steered.text.contains("сон"), "{}", steered.text);
}

#[tokio::test]
async fn a_message_signalling_self_harm_is_answered_with_where_to_get_help_first() {
    let engine = LocalEngine::new();
    for (message, help) in [
        ("I don't want to live anymore", "emergency services"),
        ("Я больше не хочу жить", "экстренные службы"),
    ] {
        let reply = engine
            .chat_reply(&ChatRequest {
                message: message.into(),
                topic: None,
            })
            .await
            .expect("reply");
        assert!(
            reply
                .text
                .split(':')
                .next()
                .is_some_and(|first| first.contains(help)),
            "help comes first: {}",
            reply.text
        );
    }
    let ordinary = engine
        .chat_reply(&ChatRequest {
            message: "I can't sleep".into(),
            topic: None,
        })
        .await
        .expect("reply");
    assert!(!ordinary.text.contains("emergency"), "{}", ordinary.text);
}

#[tokio::test]
async fn content_follows_topic_language_and_day() {
    let engine = LocalEngine::new();
    let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
    let request = |kind, topic: &str, date| ContentRequest {
        kind,
        topic: topic.into(),
        date,
        language: Language::detect(topic),
    };
    let article = engine
        .generate_content(&request(ContentKind::Article, "сон", day))
        .await
        .expect("article");
    assert!(
        article
            .title
            .as_deref()
            .is_some_and(|t| t.starts_with("Сон"))
    );
    assert!(article.body.contains("1. "), "{}", article.body);
    assert_eq!(
        Language::detect(&article.body),
        Language::Ru,
        "{}",
        article.body
    );
    let quote = engine
        .generate_content(&request(ContentKind::Quote, "sleep", day))
        .await
        .expect("quote");
    assert!(quote.author.is_some() && !quote.body.is_empty());
    let again = engine
        .generate_content(&request(ContentKind::Quote, "sleep", day))
        .await
        .expect("quote");
    assert_eq!(quote, again, "the same day gets the same quote");
    let free = engine
        .generate_content(&request(ContentKind::Article, "gardening", day))
        .await
        .expect("article on a topic outside the lexicon");
    assert!(
        free.title
            .as_deref()
            .is_some_and(|t| t.contains("Gardening"))
    );
}

#[tokio::test]
async fn text_without_letters_is_answered_and_only_blank_text_refused() {
    let engine = LocalEngine::new();
    let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
    for text in ["👍", "🏻", "?!", "\u{F2D65}"] {
        let reply = engine
            .chat_reply(&ChatRequest {
                message: text.into(),
                topic: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(!reply.text.trim().is_empty(), "{text}");
        engine
            .extract_topic(text)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        for kind in [ContentKind::Quote, ContentKind::Article] {
            let content = engine
                .generate_content(&ContentRequest {
                    kind,
                    topic: text.into(),
                    date: day,
                    language: Language::detect(text),
                })
                .await
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!content.body.trim().is_empty(), "{text}");
        }
        engine
            .analyse_conversation(text)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let blank = ChatRequest {
        message: " \n\t".into(),
        topic: None,
    };
    assert!(matches!(
        engine.chat_reply(&blank).await,
        Err(LlmError::Unusable(_))
    ));
}
