//! Generated content: a quote and an article per topic and day, and the daily content,
//! each generated once and then served from the cache for 24 hours.
//!
//! Whoever asks first generates: an endpoint on a miss, `generate_content_for_topic`, or
//! the hourly `generate_daily_content`. The cache's refresh lock makes concurrent askers
//! wait for one generation, and the model's own answers are cached by content hash too.

use celeriac_llm::{Content, ContentKind, ContentRequest, Language, LlmError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::WellnessBackend;
use crate::cache;

/// Topics of the daily content before anyone has written: one per area the seed's users
/// ask about most.
pub const DEFAULT_DAILY_TOPICS: [&str; 3] = ["stress", "sleep", "motivation"];

/// How many popular topics the daily content covers.
pub const DAILY_TOPICS: usize = 3;

/// One topic's share of the daily content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyItem {
    /// The topic label.
    pub topic: String,
    /// Its quote of the day.
    pub quote: Content,
    /// Its article of the day.
    pub article: Content,
}

/// `daily_content:{date}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyContent {
    /// The day.
    pub date: NaiveDate,
    /// One item per topic, most popular first.
    pub items: Vec<DailyItem>,
    /// When it was generated.
    pub generated_at: DateTime<Utc>,
}

impl WellnessBackend {
    /// The article of `topic` (a normalised label) for `date`.
    pub async fn article(&self, topic: &str, date: NaiveDate) -> Result<Content, LlmError> {
        self.generated(ContentKind::Article, topic, date).await
    }

    /// The quote of `topic` (a normalised label) for `date`.
    pub async fn quote(&self, topic: &str, date: NaiveDate) -> Result<Content, LlmError> {
        self.generated(ContentKind::Quote, topic, date).await
    }

    async fn generated(
        &self,
        kind: ContentKind,
        topic: &str,
        date: NaiveDate,
    ) -> Result<Content, LlmError> {
        let key = match kind {
            ContentKind::Article => cache::article(topic, date),
            ContentKind::Quote => cache::quote(topic, date),
        };
        let request = ContentRequest {
            kind,
            topic: topic.to_owned(),
            date,
            language: Language::detect(topic),
        };
        self.cache
            .get_or_compute(&key, cache::CONTENT_TTL, || {
                self.llm.generate_content(&request)
            })
            .await
    }

    /// The daily content of `date`, generated on a miss.
    pub async fn daily_content(&self, date: NaiveDate) -> Result<DailyContent, LlmError> {
        self.cache
            .get_or_compute(&cache::daily_content(date), cache::CONTENT_TTL, || {
                self.build_daily_content(date)
            })
            .await
    }

    /// Generates the daily content of `date` for the topics popular now and stores it,
    /// replacing the day's earlier version (the hourly schedule follows popularity).
    pub async fn refresh_daily_content(&self, date: NaiveDate) -> Result<DailyContent, LlmError> {
        let daily = self.build_daily_content(date).await?;
        self.cache
            .put(&cache::daily_content(date), &daily, cache::CONTENT_TTL)
            .await;
        Ok(daily)
    }

    async fn build_daily_content(&self, date: NaiveDate) -> Result<DailyContent, LlmError> {
        let mut topics: Vec<String> = self
            .popular_topics()
            .await
            .into_iter()
            .map(|popular| popular.topic)
            .take(DAILY_TOPICS)
            .collect();
        if topics.is_empty() {
            topics = DEFAULT_DAILY_TOPICS.map(str::to_owned).to_vec();
        }
        let items = futures::future::try_join_all(topics.into_iter().map(|topic| async move {
            let (quote, article) =
                futures::future::try_join(self.quote(&topic, date), self.article(&topic, date))
                    .await?;
            Ok::<_, LlmError>(DailyItem {
                topic,
                quote,
                article,
            })
        }))
        .await?;
        Ok(DailyContent {
            date,
            items,
            generated_at: Utc::now(),
        })
    }
}
