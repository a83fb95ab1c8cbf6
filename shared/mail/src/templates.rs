//! Email templates: Jinja2-compatible, rendered with minijinja.
//!
//! The shop's templates live in `shared/mail/templates/` and are compiled into the binary,
//! so a Lambda needs no files. `MAIL_TEMPLATES_DIR` names a directory whose files replace
//! the embedded ones of the same name (the rest stay embedded).
//!
//! A template `name.html` is the HTML part. Its text part is `name.txt` when that template
//! exists, and otherwise the HTML with its tags stripped ([`text_from_html`]). HTML
//! templates escape variables as Jinja2's `autoescape` does (`& < > " '`); text templates
//! print them as they are. A variable the template prints but was not given is an error,
//! not an empty string: a confirmation email without its link must not go out.

use std::path::PathBuf;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

use crate::error::MailError;
pub use crate::html_text::text_from_html;

/// `registration_confirmation.html`: variables `link` (required), `username`, `email`,
/// `project_name` (default "LocalTea"), `valid_hours`.
pub const REGISTRATION_CONFIRMATION: &str = "registration_confirmation.html";
/// `email_change_confirmation.html`: variables `link` and `new_email` (required),
/// `username`, `project_name`, `valid_hours`.
pub const EMAIL_CHANGE_CONFIRMATION: &str = "email_change_confirmation.html";
/// `password_reset.html`: variables `link` (required), `username`, `email`,
/// `project_name`, `valid_minutes`.
pub const PASSWORD_RESET: &str = "password_reset.html";
/// `account_exists.html`, sent when someone registers an address that has an account:
/// variables `email`, `project_name`.
pub const ACCOUNT_EXISTS: &str = "account_exists.html";

const EMBEDDED: [(&str, &str); 9] = [
    ("base.html", include_str!("../templates/base.html")),
    (
        REGISTRATION_CONFIRMATION,
        include_str!("../templates/registration_confirmation.html"),
    ),
    (
        "registration_confirmation.txt",
        include_str!("../templates/registration_confirmation.txt"),
    ),
    (
        EMAIL_CHANGE_CONFIRMATION,
        include_str!("../templates/email_change_confirmation.html"),
    ),
    (
        "email_change_confirmation.txt",
        include_str!("../templates/email_change_confirmation.txt"),
    ),
    (
        PASSWORD_RESET,
        include_str!("../templates/password_reset.html"),
    ),
    (
        "password_reset.txt",
        include_str!("../templates/password_reset.txt"),
    ),
    (
        ACCOUNT_EXISTS,
        include_str!("../templates/account_exists.html"),
    ),
    (
        "account_exists.txt",
        include_str!("../templates/account_exists.txt"),
    ),
];

/// Both parts of a rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
}

/// The template set: the embedded templates, optionally overridden from a directory.
/// Compiled templates are cached, so build one per process and share it.
pub struct Templates {
    env: Environment<'static>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Templates {
    /// The embedded templates, with files in `dir` (if any) taking their place by name.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_formatter(markupsafe_formatter);
        let loader_dir = dir.clone();
        env.set_loader(move |name| load(loader_dir.as_deref(), name));
        Self { env, dir }
    }

    /// Renders template `name` (`registration_confirmation` or
    /// `registration_confirmation.html`) with `environment` as its variables.
    pub fn render(
        &self,
        name: &str,
        environment: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Rendered, MailError> {
        let stem = name.strip_suffix(".html").unwrap_or(name);
        if !is_safe_name(stem) {
            return Err(MailError::Invalid(format!(
                "template name {name:?} must be letters, digits, `_`, `-`, `.` and `/` without `..`"
            )));
        }
        let context = Value::from(Serde(environment));
        let html_name = format!("{stem}.html");
        let html = self
            .env
            .get_template(&html_name)
            .and_then(|t| t.render(&context))
            .map_err(|e| template_error(&html_name, &e))?;
        let text_name = format!("{stem}.txt");
        let text = match self.env.get_template(&text_name) {
            Ok(template) => template
                .render(&context)
                .map_err(|e| template_error(&text_name, &e))?,
            Err(e) if e.kind() == ErrorKind::TemplateNotFound => text_from_html(&html),
            Err(e) => return Err(template_error(&text_name, &e)),
        };
        Ok(Rendered { html, text })
    }
}

fn template_error(name: &str, err: &minijinja::Error) -> MailError {
    if err.kind() == ErrorKind::TemplateNotFound {
        MailError::Invalid(format!("no email template named {name:?}"))
    } else {
        MailError::Invalid(format!("email template {name:?} failed: {err}"))
    }
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        && !name.split('/').any(|part| part == ".." || part.is_empty())
}

fn load(dir: Option<&std::path::Path>, name: &str) -> Result<Option<String>, minijinja::Error> {
    // Names come from task arguments and `{% extends %}`: never leave the directory.
    if !is_safe_name(name) {
        return Ok(None);
    }
    if let Some(dir) = dir {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(source) => return Ok(Some(source)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("cannot read template {name} from {}: {e}", dir.display()),
                ));
            }
        }
    }
    Ok(EMBEDDED
        .iter()
        .find(|(embedded, _)| *embedded == name)
        .map(|(_, source)| (*source).to_owned()))
}

/// Escapes strings as Jinja2's MarkupSafe does (`& < > " '`). minijinja also escapes `/`,
/// which turns every link into `https:&#x2f;&#x2f;...`: valid, but not what a Jinja2
/// template produced, and unreadable in the HTML source.
fn markupsafe_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if *state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&#34;"),
                    '\'' => escaped.push_str("&#39;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped)
                .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string()))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    const LINK: &str = "https://shop.example/api/v1/user/confirm?token=t0k3n&next=/cart";

    #[test]
    fn registration_confirmation_carries_the_link_in_both_parts() {
        let rendered = Templates::default()
            .render(
                "registration_confirmation",
                &vars(json!({"link": LINK, "username": "Anna", "valid_hours": 48})),
            )
            .expect("renders");
        // In HTML the `&` of the query is escaped, as in any HTML attribute.
        let escaped = LINK.replace('&', "&amp;");
        assert!(
            rendered.html.contains(&format!("href=\"{escaped}\"")),
            "{}",
            rendered.html
        );
        assert!(rendered.html.contains("Hello Anna,"), "{}", rendered.html);
        assert!(rendered.html.contains("valid for 48 hours"));
        assert!(rendered.html.contains("<h1"), "the layout is applied");
        // The text part comes from the .txt template: the link raw, on its own line.
        assert!(
            rendered.text.lines().any(|line| line == LINK),
            "{}",
            rendered.text
        );
        assert!(
            rendered.text.starts_with("Hello Anna,\n"),
            "{}",
            rendered.text
        );
        assert!(!rendered.text.contains('<'), "{}", rendered.text);
    }

    #[test]
    fn email_change_names_the_new_address() {
        let rendered = Templates::default()
            .render(
                EMAIL_CHANGE_CONFIRMATION,
                &vars(json!({"link": LINK, "new_email": "new@shop.example"})),
            )
            .expect("renders");
        assert!(rendered.html.contains("<strong>new@shop.example</strong>"));
        assert!(rendered.text.contains("to new@shop.example."));
        assert!(rendered.text.lines().any(|line| line == LINK));
        assert!(!rendered.text.contains("valid for"), "no valid_hours given");
    }

    #[test]
    fn password_reset_carries_the_link_and_its_lifetime() {
        let rendered = Templates::default()
            .render(
                PASSWORD_RESET,
                &vars(json!({"link": LINK, "email": "mei@shop.example", "valid_minutes": 60})),
            )
            .expect("renders");
        assert!(rendered.text.lines().any(|line| line == LINK));
        assert!(
            rendered.text.contains("for 60 minutes"),
            "{}",
            rendered.text
        );
        assert!(rendered.html.contains("<strong>mei@shop.example</strong>"));
    }

    #[test]
    fn variables_are_escaped_in_html_and_verbatim_in_text() {
        let hostile = "<script>alert('x')</script> & \"friends\"";
        let rendered = Templates::default()
            .render(
                REGISTRATION_CONFIRMATION,
                &vars(json!({"link": LINK, "username": hostile})),
            )
            .expect("renders");
        assert!(!rendered.html.contains("<script>"), "{}", rendered.html);
        assert!(
            rendered.html.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;friends&#34;"
            ),
            "{}",
            rendered.html
        );
        assert!(rendered.text.contains(hostile), "{}", rendered.text);
    }

    #[test]
    fn a_missing_variable_or_template_is_invalid() {
        let templates = Templates::default();
        let err = templates
            .render(
                REGISTRATION_CONFIRMATION,
                &vars(json!({"username": "Anna"})),
            )
            .expect_err("no link");
        assert!(
            matches!(&err, MailError::Invalid(m) if m.contains("undefined")),
            "{err}"
        );
        let err = templates
            .render("no_such_template", &vars(json!({})))
            .expect_err("unknown");
        assert!(
            matches!(&err, MailError::Invalid(m) if m.contains("no email template")),
            "{err}"
        );
        for name in ["../etc/passwd", "/etc/passwd", "a//b", "x y"] {
            let err = templates.render(name, &vars(json!({}))).expect_err(name);
            assert!(matches!(err, MailError::Invalid(_)), "{name}");
        }
    }

    #[test]
    fn a_directory_overrides_by_name_and_html_only_templates_get_a_stripped_text_part() {
        let dir = std::env::temp_dir().join(format!(
            "celeriac-mail-templates-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("base.html"),
            "<html><body><p>OVERRIDDEN LAYOUT</p>{% block content %}{% endblock %}</body></html>",
        )
        .expect("write");
        std::fs::write(
            dir.join("order_shipped.html"),
            "<p>Order <b>{{ order }}</b> shipped.</p><p><a href=\"{{ link }}\">Track it</a></p>",
        )
        .expect("write");
        let templates = Templates::new(Some(dir.clone()));

        let rendered = templates
            .render(REGISTRATION_CONFIRMATION, &vars(json!({"link": LINK})))
            .expect("renders");
        assert!(
            rendered.html.contains("OVERRIDDEN LAYOUT"),
            "{}",
            rendered.html
        );
        assert!(
            rendered.html.contains("Confirm my email"),
            "embedded page kept"
        );

        let rendered = templates
            .render(
                "order_shipped",
                &vars(json!({"order": "A-17", "link": "https://shop.example/t?a=1&b=2"})),
            )
            .expect("renders");
        assert_eq!(
            rendered.text,
            "Order A-17 shipped.\n\nTrack it (https://shop.example/t?a=1&b=2)"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
