//! How often each topic comes up: a counter per topic and day, and a set of the day's
//! topics, so a ranking reads a few keys and never scans.
//!
//! `extract_topic_from_message` counts; `update_popular_topics` ranks the last
//! [`WINDOW_DAYS`] days every 30 minutes into `popular_topics:current`; the daily content
//! follows that ranking. Both keys of a day live [`KEEP_DAYS`] days, so old days fall
//! out by themselves.

use std::collections::HashMap;
use std::time::Duration;

use celeriac_kv::KvError;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::WellnessBackend;
use crate::cache;

/// Days a ranking looks back over.
pub const WINDOW_DAYS: u64 = 7;
/// Days a day's counts are kept: the window and a day's margin.
pub const KEEP_DAYS: u64 = WINDOW_DAYS + 1;
/// Topics a ranking keeps.
pub const TOP: usize = 10;

/// A topic and how often it came up in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopularTopic {
    /// The topic label.
    pub topic: String,
    /// Messages about it.
    pub count: u64,
}

fn keep() -> Duration {
    Duration::from_secs(KEEP_DAYS * 24 * 3600)
}

fn count_key(date: NaiveDate, topic: &str) -> String {
    format!("wellness:topic_count:{date}:{topic}")
}

fn day_key(date: NaiveDate) -> String {
    format!("wellness:topics_seen:{date}")
}

impl WellnessBackend {
    /// Counts one message about `topic` on `date`.
    pub async fn count_topic(&self, topic: &str, date: NaiveDate) -> Result<(), KvError> {
        self.kv
            .increment(&count_key(date, topic), 1, Some(keep()))
            .await?;
        self.kv.set_add(&day_key(date), &[topic], keep()).await
    }

    /// The most frequent topics of the [`WINDOW_DAYS`] days up to `today`, most frequent
    /// first (ties by label, so the order is stable).
    pub async fn rank_topics(&self, today: NaiveDate) -> Result<Vec<PopularTopic>, KvError> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for back in 0..WINDOW_DAYS {
            let Some(date) = today.checked_sub_days(Days::new(back)) else {
                break;
            };
            for topic in self.kv.set_members(&day_key(date)).await? {
                let count = self
                    .kv
                    .get(&count_key(date, &topic))
                    .await?
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(0);
                *counts.entry(topic).or_default() += count;
            }
        }
        let mut ranking: Vec<PopularTopic> = counts
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(topic, count)| PopularTopic { topic, count })
            .collect();
        ranking.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.topic.cmp(&b.topic)));
        ranking.truncate(TOP);
        Ok(ranking)
    }

    /// Ranks now and stores the ranking in `popular_topics:current`.
    pub async fn refresh_popular_topics(
        &self,
        today: NaiveDate,
    ) -> Result<Vec<PopularTopic>, KvError> {
        let ranking = self.rank_topics(today).await?;
        self.cache
            .put(
                &cache::popular_topics(),
                &ranking,
                cache::POPULAR_TOPICS_TTL,
            )
            .await;
        Ok(ranking)
    }

    /// The stored ranking; empty when there is none yet or the store is down (popularity
    /// only orders content, it never blocks it).
    pub async fn popular_topics(&self) -> Vec<PopularTopic> {
        self.cache
            .get(&cache::popular_topics())
            .await
            .unwrap_or_default()
    }
}
