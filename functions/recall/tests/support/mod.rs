//! What the recall test files share: a backend on the in-memory store, a stored
//! conversation, the runner over recall's tasks, and an attempt's context.
#![allow(dead_code)] // each test file uses its own part of it

use std::sync::Arc;
use std::time::{Duration, Instant};

use celeriac_kv::SharedKv;
use celeriac_llm::SharedLlm;
use celeriac_recall::RecallBackend;
use celeriac_recall::store::{MemoryConversations, NewConversation, Priority};
use celeriac_tasks::{Registry, Runner, TaskContext};

/// Recall over the in-memory store (the embedded default) and `llm`.
pub fn backend(llm: SharedLlm) -> RecallBackend {
    RecallBackend {
        store: Arc::new(MemoryConversations::new()),
        llm,
    }
}

/// Stores `content` for `owner` at `priority`; its id.
pub async fn create(
    backend: &RecallBackend,
    owner: &str,
    priority: Priority,
    content: &str,
) -> i64 {
    backend
        .store
        .create(NewConversation {
            owner_id: owner.into(),
            title: None,
            content: content.into(),
            post_type: "update".into(),
            priority,
        })
        .await
        .expect("create")
        .id
}

/// The runner a queue-triggered recall function uses, with task state in `kv`.
pub fn runner(backend: &RecallBackend, kv: SharedKv) -> Runner {
    Runner::new(
        Arc::new(celeriac_recall::tasks::register(
            backend,
            None,
            Registry::new(),
        )),
        kv,
    )
}

/// The context of an attempt after `retries` retries.
pub fn attempt(retries: u32) -> TaskContext {
    TaskContext {
        task_id: format!("attempt-{retries}"),
        retries,
        deadline: Instant::now() + Duration::from_secs(60),
    }
}
