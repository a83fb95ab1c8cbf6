//! Splitting conversations into the sentences the engine scores.

/// A sentence of the input, with the speaker's name taken off (`Anna: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The sentence as written, trimmed.
    pub text: String,
    /// Its position in the conversation.
    pub position: usize,
}

/// The line without a leading `Name:` (one to three words, none longer than 30
/// characters), as transcripts and chat exports write speakers.
pub fn strip_speaker(line: &str) -> &str {
    let line = line.trim();
    if let Some((head, rest)) = line.split_once(':') {
        let words = head.split_whitespace().count();
        if (1..=3).contains(&words)
            && head.chars().count() <= 30
            && head
                .chars()
                .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '.')
            && rest.starts_with(char::is_whitespace)
            && !rest.trim().is_empty()
        {
            return rest.trim();
        }
    }
    line
}

/// The conversation's sentences, speakers removed, in order. A sentence ends at `.`,
/// `!` or `?` followed by a space (so `3.5` and `e.g.x` stay whole), or at a line end.
pub fn sentences(text: &str) -> Vec<Sentence> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = strip_speaker(line);
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (i, &(at, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?' | '…') && next_is_space {
                push(&mut found, &line[start..at + c.len_utf8()]);
                start = at + c.len_utf8();
            }
        }
        push(&mut found, &line[start..]);
    }
    found
}

fn push(found: &mut Vec<Sentence>, text: &str) {
    let text = text.trim();
    if text.chars().any(char::is_alphanumeric) {
        found.push(Sentence {
            text: text.to_owned(),
            position: found.len(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speakers_come_off_and_sentences_split_at_their_ends() {
        let found: Vec<String> = sentences(
            "Anna: The report is due. Version 3.5 is ready!\nОльга: Нужно отправить отчёт до пятницы\nplain line",
        )
        .into_iter()
        .map(|s| s.text)
        .collect();
        assert_eq!(
            found,
            [
                "The report is due.",
                "Version 3.5 is ready!",
                "Нужно отправить отчёт до пятницы",
                "plain line"
            ]
        );
        assert_eq!(
            strip_speaker("Note: this is not a speaker: really"),
            "this is not a speaker: really"
        );
        assert_eq!(strip_speaker("http://example.com"), "http://example.com");
    }
}
