//! The topic lexicon: wellness topics under stable ids, with their English and Russian
//! labels, the words that signal them, and the tips and quotes the local engine writes
//! from (`shared/llm/lexicon.json`, compiled in).
//!
//! Words are compared by their Snowball stems, so `стресс`, `стресса` and `стрессом`
//! all signal `stress`, and `Stressed` finds it as well as `stress` does. The wellness
//! app files its catalogue under these ids, whatever language a topic arrives in.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::port::Language;

/// One topic.
#[derive(Debug, Deserialize)]
pub struct TopicEntry {
    /// Stable, language-neutral id (`stress`).
    pub id: String,
    /// English label.
    pub en: String,
    /// Russian label.
    pub ru: String,
    words: Vec<String>,
    tips: Localised<Vec<String>>,
    #[serde(skip)]
    stems: Vec<String>,
    #[serde(skip)]
    phrases: Vec<String>,
}

impl TopicEntry {
    /// The label in `language`.
    pub fn label(&self, language: Language) -> &str {
        match language {
            Language::En => &self.en,
            Language::Ru => &self.ru,
        }
    }

    /// Practical tips in `language`.
    pub fn tips(&self, language: Language) -> &[String] {
        self.tips.get(language)
    }

    /// How many of `stems` (and phrases of `lowercase`) signal this topic.
    fn score(&self, stems: &[String], lowercase: &str) -> usize {
        let words = stems.iter().filter(|s| self.stems.contains(s)).count();
        let phrases = self
            .phrases
            .iter()
            .filter(|p| lowercase.contains(p.as_str()))
            .count();
        words + phrases
    }
}

/// A text in both languages.
#[derive(Debug, Deserialize)]
pub struct Localised<T> {
    en: T,
    ru: T,
}

impl<T> Localised<T> {
    /// The text in `language`.
    pub fn get(&self, language: Language) -> &T {
        match language {
            Language::En => &self.en,
            Language::Ru => &self.ru,
        }
    }
}

/// A quote and its author, in both languages.
#[derive(Debug, Deserialize)]
pub struct Quote {
    /// Who said it.
    pub author: Localised<String>,
    /// What they said.
    pub text: Localised<String>,
}

#[derive(Debug, Deserialize)]
struct Lexicon {
    topics: Vec<TopicEntry>,
    quotes: HashMap<String, Vec<Quote>>,
}

/// Topic id of the lexicon's general entry, used when nothing more specific is found.
pub const GENERAL: &str = "wellbeing";

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    // Compiled in: a parse failure is found by the first test that touches the lexicon.
    #[allow(clippy::expect_used)]
    let mut lexicon: Lexicon =
        serde_json::from_str(include_str!("../lexicon.json")).expect("lexicon.json parses");
    for topic in &mut lexicon.topics {
        for word in &topic.words {
            if word.contains(' ') {
                topic.phrases.push(word.to_lowercase());
            } else {
                topic.stems.push(stem(&word.to_lowercase()));
            }
        }
    }
    lexicon
});

/// The Snowball stem of a lowercase word, in the stemmer of its script.
pub fn stem(word: &str) -> String {
    let algorithm = match Language::detect(word) {
        Language::Ru => rust_stemmers::Algorithm::Russian,
        Language::En => rust_stemmers::Algorithm::English,
    };
    rust_stemmers::Stemmer::create(algorithm)
        .stem(word)
        .into_owned()
}

/// Lowercase words of `text` (letters, digits, inner hyphens and apostrophes).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\'' || c == '’'))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every topic, in lexicon order (feelings before circumstances, so a message about
/// stress at work is about stress).
pub fn all() -> &'static [TopicEntry] {
    &LEXICON.topics
}

/// The topic `text` is most about, if any of its words signals one; ties go to the
/// earlier topic.
pub fn best_match(text: &str) -> Option<&'static TopicEntry> {
    let lowercase = text.to_lowercase();
    let stems: Vec<String> = words(&lowercase).iter().map(|w| stem(w)).collect();
    let mut best: Option<(&TopicEntry, usize)> = None;
    for topic in all() {
        let score = topic.score(&stems, &lowercase);
        if score > 0 && best.is_none_or(|(_, top)| score > top) {
            best = Some((topic, score));
        }
    }
    best.map(|(topic, _)| topic)
}

/// The topic a label names: its id or either label exactly, else the topic its words
/// signal (`Stressed`, `стресса`, `стресс на работе`).
pub fn lookup(label: &str) -> Option<&'static TopicEntry> {
    let label = label.trim().to_lowercase();
    all()
        .iter()
        .find(|t| t.id == label || t.en == label || t.ru == label)
        .or_else(|| best_match(&label))
}

/// The general topic.
///
/// # Panics
///
/// When the lexicon has no [`GENERAL`] entry; a test checks it has.
#[allow(clippy::expect_used)]
pub fn general() -> &'static TopicEntry {
    all()
        .iter()
        .find(|t| t.id == GENERAL)
        .expect("the lexicon has its general topic")
}

/// Quotes for topic `id`, or the general ones.
pub fn quotes(id: &str) -> &'static [Quote] {
    LEXICON
        .quotes
        .get(id)
        .or_else(|| LEXICON.quotes.get("general"))
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_in_either_language_and_inflected_forms_find_one_topic() {
        for label in [
            "stress",
            "Stressed",
            "стресс",
            "стресса",
            "стрессом",
            "Стресс на работе",
        ] {
            assert_eq!(
                lookup(label).map(|t| t.id.as_str()),
                Some("stress"),
                "{label}"
            );
        }
        assert_eq!(lookup("сон").map(|t| t.id.as_str()), Some("sleep"));
        assert_eq!(
            lookup("quantum chromodynamics").map(|t| t.id.as_str()),
            None
        );
    }

    #[test]
    fn every_topic_has_labels_words_and_tips_in_both_languages() {
        assert_eq!(general().id, GENERAL);
        for topic in all() {
            assert!(
                !topic.stems.is_empty() || !topic.phrases.is_empty(),
                "{}",
                topic.id
            );
            for language in [Language::En, Language::Ru] {
                assert!(!topic.label(language).is_empty(), "{}", topic.id);
                assert!(topic.tips(language).len() >= 2, "{}", topic.id);
            }
        }
        assert!(!quotes("no-such-topic").is_empty(), "general quotes exist");
    }
}
