//! The seed's cache keys and TTLs, over `celeriac_cache`.
//!
//! | seed key | TTL | stored at |
//! |---|---|---|
//! | `user_topic:{user_id}` | 1 h | `wellness:v1:user_topic:{user_id}` |
//! | `recommendations:{user_id}` | 30 min | `wellness:v1:recommendations:{user_id}` |
//! | `article:{topic}:{date}` | 24 h | `wellness:v1:article:{topic}:{date}` |
//! | `quote:{topic}:{date}` | 24 h | `wellness:v1:quote:{topic}:{date}` |
//! | `daily_content:{date}` | 24 h | `wellness:v1:daily_content:{date}` |
//!
//! The `wellness:v1:` prefix is the cache's own (app and version, so a change of shape
//! abandons old entries instead of misreading them). Content entries are tagged with
//! their date, so `cleanup_old_content` can drop a past day's entries in one call
//! without scanning keys. `popular_topics:current` holds the ranking the 30-minute
//! schedule computes.

use std::time::Duration;

use celeriac_cache::{CacheConfig, CacheKey};
use chrono::NaiveDate;

/// `user_topic:{user_id}`: 1 hour.
pub const USER_TOPIC_TTL: Duration = Duration::from_secs(3600);
/// `recommendations:{user_id}`: 30 minutes.
pub const RECOMMENDATIONS_TTL: Duration = Duration::from_secs(30 * 60);
/// Generated content and the daily content: 24 hours.
pub const CONTENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The popular topics ranking: refreshed every 30 minutes, kept an hour so one missed
/// run does not empty it.
pub const POPULAR_TOPICS_TTL: Duration = Duration::from_secs(3600);

/// The wellness cache: prefix `wellness`, and a refresh lock long enough for a model
/// call, so concurrent misses on one topic wait for one generation.
pub fn config() -> CacheConfig {
    CacheConfig {
        prefix: "wellness".into(),
        refresh_lock: Duration::from_secs(60),
        ..CacheConfig::default()
    }
}

/// `user_topic:{user_id}`.
pub fn user_topic(user_id: &str) -> CacheKey {
    CacheKey::new("user_topic", user_id)
}

/// `recommendations:{user_id}`.
pub fn recommendations(user_id: &str) -> CacheKey {
    CacheKey::new("recommendations", user_id)
}

/// `article:{topic}:{date}`.
pub fn article(topic: &str, date: NaiveDate) -> CacheKey {
    CacheKey::new("article", format!("{topic}:{date}")).tagged(content_tag(date))
}

/// `quote:{topic}:{date}`.
pub fn quote(topic: &str, date: NaiveDate) -> CacheKey {
    CacheKey::new("quote", format!("{topic}:{date}")).tagged(content_tag(date))
}

/// `daily_content:{date}`.
pub fn daily_content(date: NaiveDate) -> CacheKey {
    CacheKey::new("daily_content", date.to_string()).tagged(content_tag(date))
}

/// `popular_topics:current`.
pub fn popular_topics() -> CacheKey {
    CacheKey::new("popular_topics", "current")
}

/// The tag on every content entry of `date`.
pub fn content_tag(date: NaiveDate) -> String {
    format!("content:{date}")
}
