//! Conversation analysis without a model: YAKE keywords, an extractive summary, and
//! action items picked by the cues of requests, commitments and deadlines.

use std::collections::HashMap;
use std::sync::LazyLock;

use yake_rust::{Config, StopWords};

use super::text::{Sentence, sentences};
use crate::port::{ConversationAnalysis, Language};
use crate::topics::{stem, words};

/// Keywords returned at most.
pub const MAX_KEYWORDS: usize = 8;
/// Keywords an analysis has at least, when the text has that many candidates.
pub const MIN_KEYWORDS: usize = 5;

/// Phrases that make a sentence something someone has to do: requests, commitments,
/// obligations and deadlines. Matched in the lowercased sentence, on word boundaries.
const CUES_EN: &[&str] = &[
    "need to",
    "needs to",
    "must",
    "have to",
    "has to",
    "should",
    "i'll",
    "we'll",
    "i will",
    "we will",
    "you will",
    "let's",
    "please",
    "make sure",
    "don't forget",
    "do not forget",
    "remember to",
    "deadline",
    "due",
    "action item",
    "to do",
    "todo",
    "follow up",
    "by monday",
    "by tuesday",
    "by wednesday",
    "by thursday",
    "by friday",
    "by saturday",
    "by sunday",
    "by tomorrow",
    "by tonight",
    "by the end of",
    "by end of",
    "by eod",
    "by next",
    "can you",
    "could you",
    "would you",
];

/// The Russian cues, matched at word starts so that inflections (`должны`, `сделаем`)
/// count.
const CUES_RU: &[&str] = &[
    "нужно",
    "надо",
    "необходимо",
    "должен",
    "должна",
    "должны",
    "сделаю",
    "сделаем",
    "пришлю",
    "пришлём",
    "отправлю",
    "отправим",
    "подготовлю",
    "подготовим",
    "давайте",
    "пожалуйста",
    "срок",
    "дедлайн",
    "не забудь",
    "не забыть",
    "до понедельника",
    "до вторника",
    "до среды",
    "до четверга",
    "до пятницы",
    "до субботы",
    "до воскресенья",
    "до завтра",
    "до конца",
    "к понедельнику",
    "к пятнице",
    "к концу",
    "можешь",
    "можете",
    "сможешь",
    "сможете",
];

/// Verbs that open an instruction (`Send the slides`, `Book the room`).
const IMPERATIVES_EN: &[&str] = &[
    "send", "submit", "review", "prepare", "call", "email", "update", "schedule", "book", "finish",
    "write", "check", "fix", "share", "draft", "buy", "ask", "confirm", "complete", "create",
    "set", "organise", "organize", "plan", "pay", "order", "remind",
];

/// The stop words of each language, parsed once (YAKE takes them on every call).
static STOP_WORDS: LazyLock<[StopWords; 2]> = LazyLock::new(|| {
    [Language::En, Language::Ru].map(|language| {
        StopWords::predefined(language.code())
            .unwrap_or_else(|| StopWords::custom(Default::default()))
    })
});

fn stop_words(language: Language) -> &'static StopWords {
    match language {
        Language::En => &STOP_WORDS[0],
        Language::Ru => &STOP_WORDS[1],
    }
}

/// Whether `cue` occurs in `lowercase` starting at a word boundary (and, for English,
/// ending at one).
fn has_cue(lowercase: &str, cue: &str, whole_word: bool) -> bool {
    lowercase.match_indices(cue).any(|(at, _)| {
        let before = lowercase[..at].chars().next_back();
        let after = lowercase[at + cue.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric())
            && (!whole_word || after.is_none_or(|c| !c.is_alphanumeric()))
    })
}

/// Whether a sentence asks or commits someone to do something.
pub fn is_action(sentence: &str) -> bool {
    let lowercase = sentence.to_lowercase();
    let question = lowercase.trim_end().ends_with('?');
    match Language::detect(sentence) {
        Language::En => {
            let first = words(&lowercase).into_iter().next().unwrap_or_default();
            let request = ["can you", "could you", "would you", "please"]
                .iter()
                .any(|cue| has_cue(&lowercase, cue, true));
            // A question is an action only when it is a request.
            if question {
                return request;
            }
            IMPERATIVES_EN.contains(&first.as_str())
                || CUES_EN.iter().any(|cue| has_cue(&lowercase, cue, true))
        }
        Language::Ru => {
            let request = ["можешь", "можете", "сможешь", "сможете", "пожалуйста"]
                .iter()
                .any(|cue| has_cue(&lowercase, cue, false));
            if question {
                return request;
            }
            CUES_RU.iter().any(|cue| has_cue(&lowercase, cue, false))
        }
    }
}

/// The most important key words and phrases of `text`, most important first, without
/// two that share all their stems.
pub fn keywords(text: &str, language: Language) -> Vec<String> {
    let plain: String = sentences(text)
        .into_iter()
        .map(|s| s.text)
        .collect::<Vec<_>>()
        .join(" ");
    let config = Config {
        ngrams: 2,
        ..Config::default()
    };
    // How often each stem occurs: what a conversation is about comes back, while
    // YAKE's favourites also include a greeting's verb or a one-off remark (`joining`,
    // `item today`, `собрались` on the shipped meetings).
    let mut occurrences: HashMap<String, usize> = HashMap::new();
    for word in words(&plain.to_lowercase()) {
        *occurrences.entry(stem(&word)).or_default() += 1;
    }
    let mut candidates: Vec<(String, Vec<String>)> = Vec::new();
    for item in yake_rust::get_n_best(MAX_KEYWORDS * 3, &plain, stop_words(language), &config) {
        let keyword = item.keyword.to_lowercase();
        let stems: Vec<String> = words(&keyword).iter().map(|w| stem(w)).collect();
        if !stems.is_empty() {
            candidates.push((keyword, stems));
        }
    }
    let recurs = |stems: &[String]| stems.iter().any(|s| occurrences.get(s) > Some(&1));
    // Recurring candidates first, in YAKE's order; one-offs only fill up to
    // MIN_KEYWORDS (a short chat may repeat nothing).
    let mut found = Vec::new();
    let mut covered: Vec<String> = Vec::new();
    for (keyword, stems) in candidates.iter().filter(|(_, stems)| recurs(stems)) {
        take_keyword(keyword, stems, &mut found, &mut covered);
    }
    for (keyword, stems) in candidates.iter().filter(|(_, stems)| !recurs(stems)) {
        if found.len() >= MIN_KEYWORDS {
            break;
        }
        take_keyword(keyword, stems, &mut found, &mut covered);
    }
    found
}

/// Adds `keyword` unless every stem of it is already in a better one (`marketing` after
/// `marketing numbers`) or the list is full.
fn take_keyword(
    keyword: &str,
    stems: &[String],
    found: &mut Vec<String>,
    covered: &mut Vec<String>,
) {
    if found.len() == MAX_KEYWORDS || stems.iter().all(|s| covered.contains(s)) {
        return;
    }
    covered.extend_from_slice(stems);
    found.push(keyword.to_owned());
}

/// The one to three sentences that carry the most keyword weight, in their original
/// order.
pub fn summary(all: &[Sentence], keywords: &[String]) -> String {
    let weights: Vec<(Vec<String>, f64)> = keywords
        .iter()
        .enumerate()
        .map(|(rank, k)| {
            let stems = words(k).iter().map(|w| stem(w)).collect();
            #[allow(clippy::cast_precision_loss)]
            let weight = 1.0 / (1.0 + rank as f64);
            (stems, weight)
        })
        .collect();
    let keep = match all.len() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    let mut scored: Vec<(f64, &Sentence)> = all
        .iter()
        .map(|sentence| {
            let stems: Vec<String> = words(&sentence.text).iter().map(|w| stem(w)).collect();
            let score: f64 = weights
                .iter()
                .filter(|(kw, _)| kw.iter().all(|k| stems.contains(k)))
                .map(|(_, weight)| weight)
                .sum();
            // Longer sentences hold more keywords by chance; very short ones (greetings,
            // "Thanks for joining.") rarely carry the substance.
            #[allow(clippy::cast_precision_loss)]
            let length = (stems.len().max(1) as f64).sqrt();
            // Under four words ("Thanks for joining.") is a pleasantry whenever there is
            // anything else to choose.
            #[allow(clippy::cast_precision_loss)]
            let substance = if stems.len() < 4 && all.len() > keep {
                0.0
            } else {
                (stems.len() as f64 / 6.0).min(1.0)
            };
            (score / length * substance, sentence)
        })
        .collect();
    // Highest score first; ties to the earlier sentence, so the result is deterministic.
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.position.cmp(&b.1.position))
    });
    let mut chosen: Vec<&Sentence> = scored.into_iter().take(keep).map(|(_, s)| s).collect();
    chosen.sort_by_key(|s| s.position);
    chosen
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Summary, action items and keywords of a conversation.
pub fn analyse(text: &str) -> ConversationAnalysis {
    let language = Language::detect(text);
    let all = sentences(text);
    let keywords = keywords(text, language);
    let mut action_items: Vec<String> = Vec::new();
    for sentence in all.iter().filter(|s| is_action(&s.text)) {
        let item = sentence
            .text
            .trim_end_matches(['.', '!', '…'])
            .trim()
            .to_owned();
        if !action_items.contains(&item) {
            action_items.push(item);
        }
    }
    ConversationAnalysis {
        summary: summary(&all, &keywords),
        action_items,
        keywords,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_commitments_and_deadlines_are_actions() {
        for sentence in [
            "We need to submit the Q3 report to the board by Friday.",
            "I'll send the numbers tomorrow.",
            "Send me the slides.",
            "Could you review the draft?",
            "Нужно отправить отчёт инвесторам до пятницы.",
            "Я пришлю данные в среду.",
            "Можете прислать презентацию?",
        ] {
            assert!(is_action(sentence), "{sentence}");
        }
        for sentence in [
            "How was your weekend?",
            "The weather was lovely on Saturday.",
            "Как прошли выходные?",
            "Погода была прекрасная.",
        ] {
            assert!(!is_action(sentence), "{sentence}");
        }
    }
}
