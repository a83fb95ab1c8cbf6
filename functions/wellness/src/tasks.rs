//! The wellness tasks, under the seed's names.
//!
//! | task | queue / trigger | does |
//! |---|---|---|
//! | `extract_topic_from_message` | `wellness-topics` | topic → `user_topic:{user_id}`, counted for popularity |
//! | `update_user_recommendations` | `wellness-recommendations` | `recommendations:{user_id}` for the message's topic |
//! | `generate_content_for_topic` | `wellness-content` | quote and article of a topic and day |
//! | `generate_daily_content` | every hour | `daily_content:{date}` for the popular topics |
//! | `update_popular_topics` | every 30 minutes | `popular_topics:current` |
//! | `cleanup_old_content` | every day | past days' content entries dropped |
//!
//! After a chat message, `extract_topic_from_message` and `update_user_recommendations`
//! run independently and in any order: both ask the model for the message's topic, and
//! the model's answers are cached by content hash, so the second asks the cache, not the
//! model, and both see the same topic.

use std::time::Duration;

use async_trait::async_trait;
use celeriac_llm::{Content, Language, LlmError};
use celeriac_tasks::{Registry, Task, TaskContext, TaskError, TaskSpec};
use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::WellnessBackend;
use crate::cache;
use crate::content::DailyContent;
use crate::popularity::{KEEP_DAYS, PopularTopic};
use crate::topic::{check_user_id, parse_label};

/// Queue of `extract_topic_from_message`.
pub const TOPICS_QUEUE: &str = "wellness-topics";
/// Queue of `update_user_recommendations`.
pub const RECOMMENDATIONS_QUEUE: &str = "wellness-recommendations";
/// Queue of `generate_content_for_topic`.
pub const CONTENT_QUEUE: &str = "wellness-content";

/// Longest chat message, in characters (the endpoint refuses longer ones).
pub const MAX_MESSAGE_CHARS: usize = 4000;

fn llm_failed(err: LlmError) -> TaskError {
    TaskError::classify(&err, err.is_retryable())
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Adds every wellness task to `registry`.
pub fn register(backend: &WellnessBackend, registry: Registry) -> Registry {
    registry
        .register(ExtractTopicFromMessage(backend.clone()))
        .register(UpdateUserRecommendations(backend.clone()))
        .register(GenerateContentForTopic(backend.clone()))
        .register(GenerateDailyContent(backend.clone()))
        .register(UpdatePopularTopics(backend.clone()))
        .register(CleanupOldContent(backend.clone()))
}

/// Arguments of the two tasks a chat message starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageArgs {
    /// Who wrote it.
    pub user_id: String,
    /// What they wrote (optional for `update_user_recommendations`: without it, the
    /// stored topic is used).
    #[serde(default)]
    pub message: Option<String>,
}

impl MessageArgs {
    fn message(&self) -> Result<Option<&str>, TaskError> {
        match self.message.as_deref().map(str::trim) {
            Some("") => Err(TaskError::Permanent("message: must not be empty".into())),
            Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => Err(TaskError::Permanent(format!(
                "message: at most {MAX_MESSAGE_CHARS} characters"
            ))),
            other => Ok(other),
        }
    }

    fn user_id(&self) -> Result<&str, TaskError> {
        check_user_id(&self.user_id).map_err(|e| TaskError::Permanent(e.to_string()))
    }
}

/// The topic a task stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicResult {
    /// Whose.
    pub user_id: String,
    /// The label.
    pub topic: String,
    /// The lexicon id, when known.
    pub topic_id: Option<String>,
    /// The message's language.
    pub language: Language,
}

/// `extract_topic_from_message(user_id, message)`.
#[derive(Debug, Clone)]
pub struct ExtractTopicFromMessage(pub WellnessBackend);

#[async_trait]
impl Task for ExtractTopicFromMessage {
    type Args = MessageArgs;
    type Output = TopicResult;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("extract_topic_from_message")
            .queue(TOPICS_QUEUE)
            .time_limit(Duration::from_secs(60))
    }

    async fn run(&self, args: MessageArgs, _ctx: &TaskContext) -> Result<TopicResult, TaskError> {
        let user_id = args.user_id()?;
        let message = args
            .message()?
            .ok_or_else(|| TaskError::Permanent("message: required".into()))?;
        let backend = &self.0;
        let (topic, new) = backend
            .topic_of_message(user_id, message)
            .await
            .map_err(llm_failed)?;
        // Stored again even when kept, so an ongoing conversation keeps it for another hour.
        backend
            .cache
            .put(&cache::user_topic(user_id), &topic, cache::USER_TOPIC_TTL)
            .await;
        if new {
            backend.count_topic(&topic.label, today()).await?;
        }
        tracing::info!(user_id, topic = %topic.label, topic_id = ?topic.topic_id, "user topic updated");
        Ok(TopicResult {
            user_id: user_id.to_owned(),
            topic: topic.label,
            topic_id: topic.topic_id,
            language: topic.language,
        })
    }
}

/// What `update_user_recommendations` stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationsResult {
    /// Whose.
    pub user_id: String,
    /// The topic they follow.
    pub topic: Option<String>,
    /// Videos offered.
    pub videos: usize,
    /// Catalogue articles offered.
    pub articles: usize,
}

/// `update_user_recommendations(user_id, message?)`.
#[derive(Debug, Clone)]
pub struct UpdateUserRecommendations(pub WellnessBackend);

#[async_trait]
impl Task for UpdateUserRecommendations {
    type Args = MessageArgs;
    type Output = RecommendationsResult;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("update_user_recommendations")
            .queue(RECOMMENDATIONS_QUEUE)
            .time_limit(Duration::from_secs(90))
    }

    async fn run(
        &self,
        args: MessageArgs,
        _ctx: &TaskContext,
    ) -> Result<RecommendationsResult, TaskError> {
        let user_id = args.user_id()?;
        let backend = &self.0;
        let topic = match args.message()? {
            Some(message) => Some(
                backend
                    .topic_of_message(user_id, message)
                    .await
                    .map_err(llm_failed)?
                    .0,
            ),
            None => backend.user_topic(user_id).await,
        };
        let recommendations = backend
            .refresh_recommendations(user_id, topic, today())
            .await
            .map_err(llm_failed)?;
        Ok(RecommendationsResult {
            user_id: user_id.to_owned(),
            topic: recommendations.topic.map(|t| t.label),
            videos: recommendations.videos.len(),
            articles: recommendations.articles.len(),
        })
    }
}

/// Arguments of `generate_content_for_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentArgs {
    /// The topic label.
    pub topic: String,
    /// The day (today when absent).
    #[serde(default)]
    pub date: Option<NaiveDate>,
}

/// What `generate_content_for_topic` produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentResult {
    /// The topic label.
    pub topic: String,
    /// The day.
    pub date: NaiveDate,
    /// The quote.
    pub quote: Content,
    /// The article's title.
    pub article_title: Option<String>,
}

/// `generate_content_for_topic(topic, date?)`.
#[derive(Debug, Clone)]
pub struct GenerateContentForTopic(pub WellnessBackend);

#[async_trait]
impl Task for GenerateContentForTopic {
    type Args = ContentArgs;
    type Output = ContentResult;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("generate_content_for_topic")
            .queue(CONTENT_QUEUE)
            .time_limit(Duration::from_secs(90))
    }

    async fn run(&self, args: ContentArgs, _ctx: &TaskContext) -> Result<ContentResult, TaskError> {
        let topic = parse_label(&args.topic).map_err(|e| TaskError::Permanent(e.to_string()))?;
        let date = args.date.unwrap_or_else(today);
        let (quote, article) =
            futures::future::try_join(self.0.quote(&topic, date), self.0.article(&topic, date))
                .await
                .map_err(llm_failed)?;
        Ok(ContentResult {
            topic,
            date,
            quote,
            article_title: article.title,
        })
    }
}

/// Arguments of the scheduled tasks: none needed; `date` runs one for another day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledArgs {
    /// The day to act for (today when absent).
    #[serde(default)]
    pub date: Option<NaiveDate>,
}

/// `generate_daily_content`: every hour, the day's content for the topics popular now.
#[derive(Debug, Clone)]
pub struct GenerateDailyContent(pub WellnessBackend);

#[async_trait]
impl Task for GenerateDailyContent {
    type Args = ScheduledArgs;
    type Output = DailyContent;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("generate_daily_content").time_limit(Duration::from_secs(300))
    }

    async fn run(
        &self,
        args: ScheduledArgs,
        _ctx: &TaskContext,
    ) -> Result<DailyContent, TaskError> {
        self.0
            .refresh_daily_content(args.date.unwrap_or_else(today))
            .await
            .map_err(llm_failed)
    }
}

/// `update_popular_topics`: every 30 minutes, the ranking of the last week's topics.
#[derive(Debug, Clone)]
pub struct UpdatePopularTopics(pub WellnessBackend);

#[async_trait]
impl Task for UpdatePopularTopics {
    type Args = ScheduledArgs;
    type Output = Vec<PopularTopic>;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("update_popular_topics").time_limit(Duration::from_secs(60))
    }

    async fn run(
        &self,
        args: ScheduledArgs,
        _ctx: &TaskContext,
    ) -> Result<Vec<PopularTopic>, TaskError> {
        Ok(self
            .0
            .refresh_popular_topics(args.date.unwrap_or_else(today))
            .await?)
    }
}

/// What `cleanup_old_content` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupResult {
    /// Days whose content entries were dropped.
    pub dates: Vec<NaiveDate>,
}

/// `cleanup_old_content`: every day, drops the content entries of the past week's days.
/// Their TTL would expire them within a day anyway; dropping them at once frees the
/// memory the seed's cleanup freed, and a failed drop is retried by the next run.
#[derive(Debug, Clone)]
pub struct CleanupOldContent(pub WellnessBackend);

#[async_trait]
impl Task for CleanupOldContent {
    type Args = ScheduledArgs;
    type Output = CleanupResult;

    fn spec(&self) -> TaskSpec {
        TaskSpec::new("cleanup_old_content").time_limit(Duration::from_secs(120))
    }

    async fn run(
        &self,
        args: ScheduledArgs,
        _ctx: &TaskContext,
    ) -> Result<CleanupResult, TaskError> {
        let today = args.date.unwrap_or_else(today);
        let mut dates = Vec::new();
        let mut failed = false;
        for back in 1..=KEEP_DAYS {
            let Some(date) = today.checked_sub_days(Days::new(back)) else {
                break;
            };
            if self.0.cache.invalidate_tag(&cache::content_tag(date)).await {
                dates.push(date);
            } else {
                failed = true;
            }
        }
        if failed {
            return Err(TaskError::Retryable(
                "the cache store failed for some days; their entries stay until the next attempt"
                    .into(),
            ));
        }
        Ok(CleanupResult { dates })
    }
}
