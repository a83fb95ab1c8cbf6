//! The wellness chat backend (seed 000): a user writes, the model replies at once, and
//! the background work the seed ran on Celery follows on the task queue.
//!
//! - [`http`]: `POST /chat`, the user's topic and recommendations, and content by topic,
//!   one router per endpoint (one Lambda function each);
//! - [`tasks`]: `extract_topic_from_message`, `update_user_recommendations`,
//!   `generate_content_for_topic`, and the three schedules `generate_daily_content`,
//!   `update_popular_topics` and `cleanup_old_content`;
//! - [`cache`]: the seed's cache keys and TTLs; [`topic`]: topics as users write them and
//!   as the catalogue files them; [`catalogue`]: the shipped videos and articles;
//! - [`content`]: generated quotes, articles and the daily content, through the cache;
//!   [`recommendations`]: what a user is offered for their topic; [`popularity`]: topic
//!   counts per day.
//!
//! Everything the endpoints and tasks share is one [`WellnessBackend`].

pub mod cache;
pub mod catalogue;
pub mod content;
pub mod http;
pub mod popularity;
pub mod recommendations;
pub mod tasks;
pub mod topic;

use std::sync::Arc;

use anyhow::Context;
use celeriac_cache::Cache;
use celeriac_kv::SharedKv;
use celeriac_llm::SharedLlm;
use celeriac_platform_functions::{Adapters, Defaults};
use celeriac_tasks::Registry;

use crate::catalogue::Catalogue;

/// What the wellness endpoints and tasks share: the key-value store (topic counts), the
/// cache (the seed's keys), the model and the catalogue.
#[derive(Debug, Clone)]
pub struct WellnessBackend {
    /// Topic counts per day.
    pub kv: SharedKv,
    /// The seed's cache entries (`user_topic`, `recommendations`, content).
    pub cache: Cache,
    /// The language model (answers cached by content hash).
    pub llm: SharedLlm,
    /// Videos and articles searched by topic.
    pub catalogue: Arc<Catalogue>,
}

impl WellnessBackend {
    /// A backend over `kv` and `llm` with the shipped catalogue.
    pub fn new(kv: SharedKv, llm: SharedLlm) -> Self {
        Self {
            cache: Cache::new(kv.clone(), cache::config()),
            kv,
            llm,
            catalogue: Arc::new(Catalogue::shipped()),
        }
    }

    /// The backend over a deployment's adapters. The topic and the recommendations are
    /// written by tasks and read by endpoints in other functions, so outside the dev
    /// runner Redis is required (a cache in one process's memory would not be shared).
    pub fn open(adapters: &Adapters) -> anyhow::Result<Self> {
        let kv = adapters
            .kv
            .clone()
            .context("wellness needs Redis for topics and recommendations: set REDIS_URL")?;
        let llm = adapters
            .llm
            .clone()
            .context("wellness needs a language model: set LLM_PROVIDER to bedrock or local")?;
        Ok(Self::new(kv, llm))
    }

    /// The backend of a Lambda task function: configuration and adapters from the
    /// environment, as on any function.
    pub async fn from_env(service: &str) -> anyhow::Result<Self> {
        let config = celeriac_platform::Config::from_env(service)?;
        let adapters = Adapters::open(&config, Defaults::NotConfigured).await?;
        Self::open(&adapters)
    }

    /// The wellness tasks and schedules, added to `registry`.
    pub fn register(&self, registry: Registry) -> Registry {
        tasks::register(self, registry)
    }
}
