//! The shipped video and article catalogue (`functions/wellness/catalogue.json`),
//! searched by topic.
//!
//! The seed searched a video API; here the catalogue ships with the function, so a
//! search is an in-memory filter that needs no network and no cache. Entries are filed
//! under lexicon topic ids and carry their language; a search puts the user's language
//! first.

use celeriac_llm::Language;
use serde::{Deserialize, Serialize};

/// A video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Video {
    /// Stable id.
    pub id: String,
    /// Lexicon topic ids.
    pub topics: Vec<String>,
    /// Its language.
    pub language: Language,
    /// Title.
    pub title: String,
    /// Length.
    pub duration_minutes: u32,
    /// Where to watch it.
    pub url: String,
}

/// An article from the catalogue (generated articles are [`celeriac_llm::Content`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// Stable id.
    pub id: String,
    /// Lexicon topic ids.
    pub topics: Vec<String>,
    /// Its language.
    pub language: Language,
    /// Title.
    pub title: String,
    /// A few sentences.
    pub summary: String,
}

/// Everything the catalogue holds.
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    /// Videos.
    pub videos: Vec<Video>,
    /// Articles.
    pub articles: Vec<Article>,
}

/// What a search asks for.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    /// A lexicon topic id; `None` lists everything.
    pub topic_id: Option<&'a str>,
    /// Entries in this language come first.
    pub language: Option<Language>,
    /// At most this many.
    pub limit: usize,
}

impl Catalogue {
    /// The catalogue shipped in the binary.
    ///
    /// # Panics
    ///
    /// When `catalogue.json` does not parse: it is compiled in, so the first test that
    /// opens it finds that, never a deployment.
    #[allow(clippy::expect_used)]
    pub fn shipped() -> Self {
        serde_json::from_str(include_str!("../catalogue.json"))
            .expect("functions/wellness/catalogue.json parses")
    }

    /// Videos matching `search`.
    pub fn videos(&self, search: Search<'_>) -> Vec<&Video> {
        pick(&self.videos, search, |v| (&v.topics, v.language))
    }

    /// Articles matching `search`.
    pub fn articles(&self, search: Search<'_>) -> Vec<&Article> {
        pick(&self.articles, search, |a| (&a.topics, a.language))
    }
}

fn pick<'a, T>(
    entries: &'a [T],
    search: Search<'_>,
    facets: impl Fn(&T) -> (&Vec<String>, Language),
) -> Vec<&'a T> {
    let mut found: Vec<&T> = entries
        .iter()
        .filter(|entry| {
            search
                .topic_id
                .is_none_or(|id| facets(entry).0.iter().any(|t| t == id))
        })
        .collect();
    // A stable sort keeps the catalogue's order within each language.
    if let Some(language) = search.language {
        found.sort_by_key(|entry| facets(entry).1 != language);
    }
    found.truncate(search.limit);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_filed_under_a_known_topic() {
        let catalogue = Catalogue::shipped();
        let topics = catalogue
            .videos
            .iter()
            .flat_map(|v| &v.topics)
            .chain(catalogue.articles.iter().flat_map(|a| &a.topics));
        for topic in topics {
            let entry = celeriac_llm::topics::lookup(topic);
            assert_eq!(
                entry.map(|e| e.id.as_str()),
                Some(topic.as_str()),
                "catalogue topic {topic} is not a lexicon id"
            );
        }
    }

    #[test]
    fn a_search_filters_by_topic_and_puts_the_language_first() {
        let catalogue = Catalogue::shipped();
        let videos = catalogue.videos(Search {
            topic_id: Some("stress"),
            language: Some(Language::Ru),
            limit: 10,
        });
        assert!(videos.len() >= 2);
        assert!(videos.iter().all(|v| v.topics.contains(&"stress".into())));
        assert_eq!(videos[0].language, Language::Ru);

        let english = catalogue.articles(Search {
            topic_id: Some("sleep"),
            language: Some(Language::En),
            limit: 1,
        });
        assert_eq!(english.len(), 1);
        assert_eq!(english[0].language, Language::En);

        let none = catalogue.videos(Search {
            topic_id: Some("no-such-topic"),
            language: None,
            limit: 10,
        });
        assert!(none.is_empty());
    }
}
