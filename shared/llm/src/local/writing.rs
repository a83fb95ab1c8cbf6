//! What the local engine writes: chat replies, quotes and short articles, composed from
//! our templates and the lexicon's tips and quotes. Choices are made by a hash of the
//! input, so the same input always gets the same text and different days get variety.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::port::{Content, ContentKind, Language};
use crate::topics::{self, TopicEntry};

/// A stable pick among `n` options for `parts`.
fn pick(n: usize, parts: &[&str]) -> usize {
    if n == 0 {
        return 0;
    }
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    usize::try_from(u64::from_le_bytes(first) % n as u64).unwrap_or(0)
}

const REPLIES_EN: [&str; 3] = [
    "Thank you for sharing this. It sounds like {topic} is on your mind. What feels hardest about it right now?",
    "I hear you. {Topic} can weigh on anyone. Would it help to talk through one small step you could take today?",
    "That sounds difficult. With {topic}, a short pause and a few slow breaths can make the next step clearer. What would you like to focus on?",
];
const REPLIES_RU: [&str; 3] = [
    "Спасибо, что поделились. Похоже, вас сейчас беспокоит тема «{topic}». Что в этом даётся тяжелее всего?",
    "Я вас слышу. С темой «{topic}» сталкиваются многие. Давайте подумаем об одном небольшом шаге, который можно сделать сегодня?",
    "Это звучит непросто. Когда речь идёт о теме «{topic}», короткая пауза и несколько медленных вдохов помогают увидеть следующий шаг. На чём вам хотелось бы сосредоточиться?",
];
const OPEN_EN: [&str; 2] = [
    "Thank you for writing. I'm here to listen. Could you tell me a bit more about what is going on?",
    "I'm glad you reached out. What has been on your mind lately?",
];
const OPEN_RU: [&str; 2] = [
    "Спасибо, что написали. Я здесь, чтобы выслушать. Расскажите, пожалуйста, чуть подробнее, что происходит?",
    "Хорошо, что вы обратились. Что вас волнует в последнее время?",
];

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Words that signal a risk of self-harm; matched in the lowercased message.
const RISK_EN: &[&str] = &[
    "kill myself",
    "suicide",
    "suicidal",
    "end my life",
    "hurt myself",
    "harm myself",
    "self-harm",
    "don't want to live",
    "do not want to live",
    "want to die",
];
const RISK_RU: &[&str] = &[
    "покончить с собой",
    "суицид",
    "не хочу жить",
    "убить себя",
    "навредить себе",
    "причинить себе вред",
    "хочу умереть",
];

/// Said before anything else when a message signals a risk of self-harm: templates must
/// not answer that as if it were ordinary stress.
const SAFETY_EN: &str = "If you are thinking about harming yourself, please contact local emergency services or a crisis line right now: you do not have to go through this alone.";
const SAFETY_RU: &str = "Если вы думаете о том, чтобы причинить себе вред, пожалуйста, прямо сейчас обратитесь в экстренные службы или на линию кризисной помощи: вы не должны справляться с этим в одиночку.";

/// Whether `message` signals a risk of self-harm.
pub fn signals_risk(message: &str) -> bool {
    let lowercase = message.to_lowercase();
    RISK_EN
        .iter()
        .chain(RISK_RU)
        .any(|cue| lowercase.contains(cue))
}

/// A supportive reply to `message` in `language`, naming `topic` when there is one.
pub fn reply(message: &str, topic: Option<&str>, language: Language) -> String {
    let text = templated_reply(message, topic, language);
    if !signals_risk(message) {
        return text;
    }
    let safety = match language {
        Language::En => SAFETY_EN,
        Language::Ru => SAFETY_RU,
    };
    format!("{safety} {text}")
}

fn templated_reply(message: &str, topic: Option<&str>, language: Language) -> String {
    match topic {
        Some(topic) => {
            let templates = match language {
                Language::En => &REPLIES_EN,
                Language::Ru => &REPLIES_RU,
            };
            templates[pick(templates.len(), &[message])]
                .replace("{topic}", topic)
                .replace("{Topic}", &capitalised(topic))
        }
        None => {
            let templates = match language {
                Language::En => &OPEN_EN[..],
                Language::Ru => &OPEN_RU[..],
            };
            templates[pick(templates.len(), &[message])].to_owned()
        }
    }
}

/// The quote or article of `topic` (a label, in the lexicon or not) for `date`.
pub fn content(kind: ContentKind, label: &str, date: NaiveDate, language: Language) -> Content {
    let entry = topics::lookup(label);
    let day = date.to_string();
    match kind {
        ContentKind::Quote => {
            let quotes = topics::quotes(entry.map_or("general", |e| e.id.as_str()));
            let quote = &quotes[pick(quotes.len(), &[label, &day])];
            Content {
                kind,
                title: None,
                body: quote.text.get(language).clone(),
                author: Some(quote.author.get(language).clone()),
            }
        }
        ContentKind::Article => article(entry, label, &day, language),
    }
}

fn article(entry: Option<&TopicEntry>, label: &str, day: &str, language: Language) -> Content {
    let general = topics::general();
    let shown = entry.map_or(label.to_owned(), |e| e.label(language).to_owned());
    let mut tips: Vec<&String> = entry.unwrap_or(general).tips(language).iter().collect();
    let extra = general.tips(language);
    if let Some(tip) = extra.get(pick(extra.len(), &[label, day]))
        && !tips.contains(&tip)
    {
        tips.push(tip);
    }
    let steps: Vec<String> = tips
        .iter()
        .enumerate()
        .map(|(i, tip)| format!("{}. {tip}", i + 1))
        .collect();
    let (title, intro, outro) = match language {
        Language::En => (
            format!("{}: {} small steps for today", capitalised(&shown), steps.len()),
            format!(
                "{} touches almost everyone at some point. Here are a few small, practical steps you can try today, without any special preparation.",
                capitalised(&shown)
            ),
            "Pick the one that feels easiest and notice how you feel afterwards. If things stay heavy for weeks, talking to a professional is a strong step, not a weak one.".to_owned(),
        ),
        Language::Ru => (
            format!("{}: {} небольших шага на сегодня", capitalised(&shown), steps.len()),
            format!(
                "Тема «{shown}» рано или поздно касается почти каждого. Вот несколько небольших практичных шагов, которые можно попробовать уже сегодня, без особой подготовки."
            ),
            "Выберите самый простой и отметьте, как вы себя чувствуете после. Если тяжесть не уходит неделями, обратиться к специалисту — это сильный шаг, а не слабость.".to_owned(),
        ),
    };
    Content {
        kind: ContentKind::Article,
        title: Some(title),
        body: format!("{intro}\n\n{}\n\n{outro}", steps.join("\n")),
        author: None,
    }
}
