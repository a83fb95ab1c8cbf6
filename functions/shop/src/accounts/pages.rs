//! The pages a mailed link opens, and the form they post.
//!
//! A mailed link must not act when it is merely fetched: mail scanners and link previews
//! follow links, and would confirm an account (or spend a reset link) nobody clicked. So
//! the `GET` of a link only shows a page whose one form posts the token back; the `POST`
//! acts. The same `POST` is the JSON API, so [`Submitted`] takes either a form or JSON, and
//! a form gets its answer as a page ([`Page`]) while JSON gets JSON.
//!
//! The pages load nothing and allow nothing but posting to themselves (their
//! `Content-Security-Policy`), are never cached, and send no `Referer` (the URL holds the
//! token).

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use celeriac_platform::Error;
use celeriac_platform::json::JsonBody;
use serde::de::DeserializeOwned;

/// A body sent as `application/x-www-form-urlencoded` (the page's form) or as JSON (any
/// other content type, as [`JsonBody`] reads it).
#[derive(Debug)]
pub struct Submitted<T> {
    /// The fields.
    pub body: T,
    /// Whether it came from a form, so the answer is a page.
    pub from_form: bool,
}

impl<S, T> FromRequest<S> for Submitted<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            let JsonBody(body) = JsonBody::from_request(req, state).await?;
            return Ok(Self {
                body,
                from_form: false,
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))?;
        // The error names the field at fault, never a value (a token or a password).
        let body = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            Error::BadRequest(format!(
                "invalid form: {}",
                e.to_string().split(':').next().unwrap_or("unreadable")
            ))
        })?;
        Ok(Self {
            body,
            from_form: true,
        })
    }
}

/// A small HTML page: a title, a paragraph, and optionally a form posting to the page's own
/// URL.
#[derive(Debug)]
pub struct Page {
    status: StatusCode,
    title: &'static str,
    message: String,
    form: Option<Form>,
}

/// A form posting a token back, with a new password field when one is asked for.
#[derive(Debug)]
struct Form {
    token: String,
    password: bool,
    button: &'static str,
}

impl Page {
    /// A page saying `message` (plain text, escaped here).
    pub fn message(status: StatusCode, title: &'static str, message: &str) -> Self {
        Self {
            status,
            title,
            message: escape(message),
            form: None,
        }
    }

    /// The answer to a form whose action failed: its status and message, as a page.
    pub fn failed(title: &'static str, error: &Error) -> Self {
        Self::message(error.status(), title, &error.to_string())
    }

    /// The page of a mailed link: a form posting `token` back with one button (and a new
    /// password field when `password`). A missing or malformed token (tokens are hex) is a
    /// 400 page without a form.
    pub fn token_form(
        token: Option<&str>,
        title: &'static str,
        message: &str,
        button: &'static str,
        password: bool,
    ) -> Self {
        let token = token.map(str::trim).filter(|t| {
            !t.is_empty() && t.len() <= 256 && t.chars().all(|c| c.is_ascii_alphanumeric())
        });
        let Some(token) = token else {
            return Self::message(
                StatusCode::BAD_REQUEST,
                title,
                "This link is incomplete: open the whole link from the email.",
            );
        };
        Self {
            status: StatusCode::OK,
            title,
            message: escape(message),
            form: Some(Form {
                token: token.to_owned(),
                password,
                button,
            }),
        }
    }

    fn html(&self) -> String {
        let form = self.form.as_ref().map_or_else(String::new, |form| {
            let password = if form.password {
                "<p><label>New password (8 to 128 characters)<br>\
                 <input type=\"password\" name=\"password\" minlength=\"8\" maxlength=\"128\" \
                 autocomplete=\"new-password\" required></label></p>"
            } else {
                ""
            };
            // The token is ASCII letters and digits only (checked in token_form).
            format!(
                "<form method=\"post\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
                 {password}<p><button type=\"submit\">{}</button></p></form>",
                form.token, form.button
            )
        });
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex\">\
             <title>{title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em\">\
             <h1>{title}</h1><p>{message}</p>{form}</body></html>\n",
            title = self.title,
            message = self.message,
        )
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                 frame-ancestors 'none'",
            ),
        );
        response
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_of_a_link_posts_its_token_and_nothing_hostile_gets_in() {
        let page = Page::token_form(Some("ab12"), "Confirm", "Confirm <b>", "Go", false).html();
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(page.contains("name=\"token\" value=\"ab12\""), "{page}");
        assert!(page.contains("Confirm &lt;b&gt;"), "{page}");
        assert!(!page.contains("name=\"password\""), "{page}");

        let hostile = Page::token_form(
            Some("\"><script>alert(1)</script>"),
            "Confirm",
            "m",
            "Go",
            false,
        );
        assert_eq!(hostile.status, StatusCode::BAD_REQUEST);
        let html = hostile.html();
        assert!(
            !html.contains("<script>") && !html.contains("<form"),
            "{html}"
        );

        let reset = Page::token_form(Some("cd34"), "Reset", "m", "Set", true).html();
        assert!(reset.contains("name=\"password\" minlength=\"8\" maxlength=\"128\""));
    }
}
