//! The plain-text part of an HTML email that has no text template of its own: tags
//! stripped, blocks on their own lines, each link's address kept after its label (a
//! confirmation email whose text part lost the link would be useless), entities decoded.

/// Elements whose content is never shown as text.
const HIDDEN: [&str; 4] = ["head", "style", "script", "title"];
/// Elements that start and end a paragraph.
const BLOCKS: [&str; 22] = [
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "tr",
    "ul",
    "ol",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "hr",
    "center",
    "pre",
    "body",
    "html",
];

/// The readable text of `html`.
pub fn text_from_html(html: &str) -> String {
    // ASCII lowercasing keeps byte offsets, so positions found in `lower` index `html`.
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut links: Vec<(Option<String>, usize)> = Vec::new();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if rest.starts_with("<!--") {
            i = lower[i..].find("-->").map_or(html.len(), |end| i + end + 3);
            continue;
        }
        let Some(end) = rest.starts_with('<').then(|| rest.find('>')).flatten() else {
            // A lone `<` (no `>` after it) is text; skip it so the search moves on.
            let from = usize::from(rest.starts_with('<'));
            let next = rest[from..].find('<').map_or(html.len(), |n| i + from + n);
            push_text(&mut out, &decode_entities(&html[i..next]));
            i = next;
            continue;
        };
        let tag = &html[i + 1..i + end];
        i += end + 1;
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            // Not a tag (`a < b`, `<!DOCTYPE`): a doctype is dropped, anything else kept.
            if !tag.starts_with('!') {
                push_text(&mut out, &decode_entities(&html[i - end - 1..i]));
            }
            continue;
        }
        if HIDDEN.contains(&name.as_str()) && !closing {
            let close = format!("</{name}");
            i = lower[i..].find(&close).map_or(html.len(), |at| {
                let after = i + at;
                lower[after..]
                    .find('>')
                    .map_or(html.len(), |gt| after + gt + 1)
            });
            continue;
        }
        match name.as_str() {
            "br" => {
                trim_trailing_spaces(&mut out);
                out.push('\n');
            }
            "li" if !closing => {
                trim_trailing_spaces(&mut out);
                out.push_str("\n- ");
            }
            "td" | "th" if closing => out.push(' '),
            "a" if !closing => links.push((attribute(tag, "href"), out.len())),
            "a" => {
                if let Some((Some(href), start)) = links.pop() {
                    let label = out.get(start..).unwrap_or_default().trim().to_owned();
                    let shown = href.strip_prefix("mailto:").unwrap_or(&href);
                    if !href.starts_with('#') && label != shown && !href.is_empty() {
                        if !label.is_empty() {
                            out.push(' ');
                        }
                        out.push('(');
                        out.push_str(shown);
                        out.push(')');
                    }
                }
            }
            block if BLOCKS.contains(&block) => {
                trim_trailing_spaces(&mut out);
                out.push_str("\n\n");
            }
            _ => {}
        }
    }
    tidy(&out)
}

/// Appends text with HTML's whitespace rules: any run of whitespace is one space.
fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !out.ends_with([' ', '\n']) && !out.is_empty() {
                out.push(' ');
            }
        } else {
            out.push(if c == '\u{a0}' { ' ' } else { c });
        }
    }
}

fn trim_trailing_spaces(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Lines trimmed, at most one blank line in a row, no blank lines at either end.
fn tidy(text: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() && lines.last().is_none_or(|last| last.is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

/// The value of attribute `name` in a tag's source (`a href="..." class=x`), decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let start = from + at;
        from = start + name.len();
        let before_ok = lower[..start].ends_with(|c: char| c.is_whitespace());
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let value = tag[value_start..].trim_start();
        let raw = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => value[1..].split(quote).next().unwrap_or_default(),
            Some(_) => value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or_default(),
            None => "",
        };
        return Some(decode_entities(raw.trim()));
    }
    None
}

/// Decodes the entities an email template produces: the five escapes, `&nbsp;`, and
/// numeric references. Anything else stays as written.
pub(crate) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            }?;
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_breaks_and_lists() {
        let html = "<html><head><title>T</title><style>p { color: red }</style></head>\
            <body><h1>Welcome</h1><p>Line one<br>line   two</p>\
            <ul><li>first</li><li>second</li></ul><!-- hidden --><script>alert(1)</script>\
            <p>Tea &amp; cakes &lt;3&nbsp;&#8212; &#x2f;</p></body></html>";
        assert_eq!(
            text_from_html(html),
            "Welcome\n\nLine one\nline two\n\n- first\n- second\n\nTea & cakes <3 \u{2014} /"
        );
    }

    #[test]
    fn links_keep_their_address() {
        let html = r##"<p>Please <a href="https://shop.example/confirm?token=a&amp;b=1" style="x">confirm</a>.</p>
            <p><a href="https://shop.example/x">https://shop.example/x</a>
            <a href='mailto:help@shop.example'>help@shop.example</a> <a href="#top">top</a></p>"##;
        assert_eq!(
            text_from_html(html),
            "Please confirm (https://shop.example/confirm?token=a&b=1).\n\n\
             https://shop.example/x help@shop.example top"
        );
    }

    #[test]
    fn text_without_tags_and_stray_brackets_survive() {
        assert_eq!(text_from_html("plain  text"), "plain text");
        assert_eq!(text_from_html("a < b and c > d"), "a < b and c > d");
        assert_eq!(text_from_html("fish &chips; & more"), "fish &chips; & more");
        assert_eq!(
            text_from_html("чай <b>зелёный</b> 1 < 2"),
            "чай зелёный 1 < 2"
        );
    }
}
