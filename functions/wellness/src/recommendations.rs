//! What a user is offered for their topic: catalogue videos and articles in their
//! language first, and the topic's generated quote and article of the day.
//!
//! `update_user_recommendations` builds them in the background after each chat message
//! and stores `recommendations:{user_id}` for 30 minutes; the endpoint builds them on a
//! miss from the stored topic.

use celeriac_llm::{Content, LlmError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::WellnessBackend;
use crate::cache;
use crate::catalogue::{Article, Search, Video};
use crate::topic::UserTopic;

/// Videos and catalogue articles offered at most.
pub const PICKS: usize = 3;

/// `recommendations:{user_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Whose.
    pub user_id: String,
    /// The topic they follow; `None` before the first topic is known.
    pub topic: Option<UserTopic>,
    /// Catalogue videos.
    pub videos: Vec<Video>,
    /// Catalogue articles.
    pub articles: Vec<Article>,
    /// The topic's quote of the day.
    pub quote: Option<Content>,
    /// The topic's generated article of the day.
    pub article_of_the_day: Option<Content>,
    /// When they were built.
    pub updated_at: DateTime<Utc>,
}

impl WellnessBackend {
    /// Recommendations for `user_id` following `topic` on `date`. Without a topic, the
    /// catalogue's first picks and no generated content.
    pub async fn build_recommendations(
        &self,
        user_id: &str,
        topic: Option<UserTopic>,
        date: NaiveDate,
    ) -> Result<Recommendations, LlmError> {
        let search = Search {
            topic_id: topic.as_ref().and_then(|t| t.topic_id.as_deref()),
            language: topic.as_ref().map(|t| t.language),
            limit: PICKS,
        };
        let (quote, article_of_the_day) = match &topic {
            Some(topic) => {
                let (quote, article) = futures::future::try_join(
                    self.quote(&topic.label, date),
                    self.article(&topic.label, date),
                )
                .await?;
                (Some(quote), Some(article))
            }
            None => (None, None),
        };
        Ok(Recommendations {
            user_id: user_id.to_owned(),
            videos: self.catalogue.videos(search).into_iter().cloned().collect(),
            articles: self
                .catalogue
                .articles(search)
                .into_iter()
                .cloned()
                .collect(),
            topic,
            quote,
            article_of_the_day,
            updated_at: Utc::now(),
        })
    }

    /// Builds and stores `recommendations:{user_id}`.
    pub async fn refresh_recommendations(
        &self,
        user_id: &str,
        topic: Option<UserTopic>,
        date: NaiveDate,
    ) -> Result<Recommendations, LlmError> {
        let recommendations = self.build_recommendations(user_id, topic, date).await?;
        self.cache
            .put(
                &cache::recommendations(user_id),
                &recommendations,
                cache::RECOMMENDATIONS_TTL,
            )
            .await;
        Ok(recommendations)
    }

    /// The topic of `message` from `user_id`. A message the model files under the general
    /// topic (a follow-up such as "how do I cope with it?") keeps the user's current topic,
    /// so the conversation's subject is not lost to a message that names none.
    pub async fn topic_of_message(
        &self,
        user_id: &str,
        message: &str,
    ) -> Result<(UserTopic, bool), LlmError> {
        let found = UserTopic::from_model(&self.llm.extract_topic(message).await?, Utc::now());
        if found.topic_id.as_deref() == Some(celeriac_llm::topics::GENERAL)
            && let Some(current) = self.user_topic(user_id).await
        {
            return Ok((current, false));
        }
        Ok((found, true))
    }

    /// The user's stored topic, if one is fresh.
    pub async fn user_topic(&self, user_id: &str) -> Option<UserTopic> {
        self.cache.get(&cache::user_topic(user_id)).await
    }
}
