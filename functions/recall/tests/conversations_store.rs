//! One conformance suite for the conversations port, run against the in-memory adapter
//! and PostgreSQL. Each PostgreSQL case gets a schema of its own: the deferred list is
//! global, so cases sharing a table would see each other's rows.

use std::sync::Arc;

use celeriac_recall::postgres::PgConversations;
use celeriac_recall::store::{
    AiResult, MemoryConversations, NewConversation, Priority, SharedConversations, content_hash,
};

async fn postgres() -> Option<SharedConversations> {
    let config = celeriac_testkit::database_in_fresh_schema("recall").await?;
    let pool = celeriac_db::connect(&config).await.expect("connect");
    celeriac_db::migrate(&pool).await.expect("migrate");
    Some(Arc::new(PgConversations::new(pool)))
}

fn new(owner: &str, content: &str, priority: Priority) -> NewConversation {
    NewConversation {
        owner_id: owner.into(),
        title: Some("Weekly sync".into()),
        content: content.into(),
        post_type: "update".into(),
        priority,
    }
}

fn analysis_of(content: &str) -> AiResult {
    AiResult {
        summary: "The report is due Friday.".into(),
        action_items: vec!["Submit the report by Friday".into()],
        keywords: vec!["report".into(), "friday".into()],
        model: "local-v1".into(),
        content_hash: content_hash(content),
    }
}

async fn stored_conversations_read_back_in_order(store: SharedConversations) {
    let first = store
        .create(new(
            "mei",
            "We need to submit the report by Friday.",
            Priority::High,
        ))
        .await
        .expect("create");
    let second = store
        .create(new("ken", "Lunch?", Priority::Low))
        .await
        .expect("create");
    assert!(second.id > first.id, "ids grow");
    assert!(!first.ai_processed && first.ai_summary.is_none());
    assert!(first.ai_action_items.is_empty() && !first.ai_enqueue_pending);
    let read = store.get(first.id).await.expect("get").expect("found");
    assert_eq!(read.owner_id, "mei");
    assert_eq!(read.priority, Priority::High);
    assert_eq!(read.title.as_deref(), Some("Weekly sync"));
    assert_eq!(read.content, first.content);
    assert_eq!(store.get(second.id + 1000).await.expect("get"), None);
}

async fn an_analysis_is_stored_once_per_content(store: SharedConversations) {
    let content = "Anna: We need to submit the report by Friday.";
    let conversation = store
        .create(new("mei", content, Priority::Default))
        .await
        .expect("create");
    let result = analysis_of(content);
    assert!(
        store
            .store_analysis(conversation.id, &result)
            .await
            .expect("store")
    );
    let stored = store
        .get(conversation.id)
        .await
        .expect("get")
        .expect("found");
    assert!(stored.ai_processed && stored.analysed());
    assert_eq!(
        stored.ai_summary.as_deref(),
        Some("The report is due Friday.")
    );
    assert_eq!(stored.ai_action_items, ["Submit the report by Friday"]);
    assert_eq!(stored.ai_keywords, ["report", "friday"]);
    assert_eq!(stored.ai_model.as_deref(), Some("local-v1"));
    assert!(stored.ai_processed_at.is_some());

    let again = AiResult {
        summary: "A second answer".into(),
        ..analysis_of(content)
    };
    assert!(
        !store
            .store_analysis(conversation.id, &again)
            .await
            .expect("store"),
        "a second delivery stores nothing"
    );
    let unchanged = store
        .get(conversation.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(unchanged, stored);
    assert!(
        !store
            .store_analysis(conversation.id + 1000, &result)
            .await
            .expect("store")
    );
}

async fn racing_deliveries_store_one_analysis(store: SharedConversations) {
    let content = "Ben: I'll send the marketing numbers by Wednesday.";
    let conversation = store
        .create(new("mei", content, Priority::Default))
        .await
        .expect("create");
    // Eight deliveries of the same task, each with its own model answer, all at once.
    let attempts = (0..8).map(|n| {
        let store = store.clone();
        let result = AiResult {
            summary: format!("answer {n}"),
            ..analysis_of(content)
        };
        async move {
            let stored = store
                .store_analysis(conversation.id, &result)
                .await
                .expect("store");
            (stored, result.summary)
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let winners: Vec<&String> = outcomes
        .iter()
        .filter(|(stored, _)| *stored)
        .map(|(_, summary)| summary)
        .collect();
    assert_eq!(winners.len(), 1, "one write wins: {outcomes:?}");
    let row = store
        .get(conversation.id)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        row.ai_summary.as_ref(),
        Some(winners[0]),
        "the winner's answer is kept"
    );
}

async fn deferred_conversations_are_listed_until_cleared(store: SharedConversations) {
    let a = store
        .create(new("mei", "one", Priority::High))
        .await
        .expect("create");
    let b = store
        .create(new("mei", "two", Priority::Low))
        .await
        .expect("create");
    store
        .create(new("mei", "three", Priority::Default))
        .await
        .expect("create");
    store.set_enqueue_pending(a.id, true).await.expect("mark");
    store.set_enqueue_pending(b.id, true).await.expect("mark");
    let pending: Vec<i64> = store
        .enqueue_pending(10)
        .await
        .expect("list")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(pending, [a.id, b.id], "oldest first");
    assert_eq!(store.enqueue_pending(1).await.expect("list").len(), 1);
    store.set_enqueue_pending(a.id, false).await.expect("clear");
    let left = store.enqueue_pending(10).await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id, left[0].priority), (b.id, Priority::Low));
    assert!(left[0].ai_enqueue_pending);
}

macro_rules! conformance {
    ($($adapter:ident => $open:expr;)*) => {$(
        mod $adapter {
            use super::*;
            async fn store() -> Option<SharedConversations> { $open }
            conformance!(@cases
                stored_conversations_read_back_in_order,
                an_analysis_is_stored_once_per_content,
                racing_deliveries_store_one_analysis,
                deferred_conversations_are_listed_until_cleared);
        }
    )*};
    (@cases $($case:ident),*) => {$(
        #[tokio::test]
        async fn $case() {
            let Some(store) = store().await else { return };
            super::$case(store).await;
        }
    )*};
}

conformance! {
    memory => Some(Arc::new(MemoryConversations::new()) as SharedConversations);
    postgres => postgres().await;
}
