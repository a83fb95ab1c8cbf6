//! The session cookie: building `Set-Cookie` values and finding the cookie in a request.

use std::time::Duration;

use http::HeaderMap;

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (following a link keeps the user
    /// logged in), not on their subrequests or form posts. The default.
    #[default]
    Lax,
    /// Never sent on requests started by another site.
    Strict,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
        }
    }
}

/// Whether `name` is a cookie name browsers accept (an RFC 6265 token).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A `Set-Cookie` value. No `Domain`, so the cookie stays on the host that set it.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    max_age: Duration,
    same_site: SameSite,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Max-Age={}; Path=/; HttpOnly{secure}; SameSite={}",
        max_age.as_secs(),
        same_site.as_str()
    )
}

/// The value of cookie `name` in the request's `Cookie` headers, if any.
pub(crate) fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_carries_every_protective_attribute() {
        let value = set_cookie(
            "session",
            "abc",
            Duration::from_secs(3600),
            SameSite::Lax,
            true,
        );
        assert_eq!(
            value,
            "session=abc; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        let strict = set_cookie("s", "", Duration::ZERO, SameSite::Strict, false);
        assert_eq!(strict, "s=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::COOKIE,
            "theme=dark; lang=en".parse().expect("value"),
        );
        headers.append(
            http::header::COOKIE,
            "other_session=x; session=tok123".parse().expect("value"),
        );
        assert_eq!(find(&headers, "session"), Some("tok123"));
        assert_eq!(find(&headers, "lang"), Some("en"));
        assert_eq!(find(&headers, "sess"), None);
        assert_eq!(find(&HeaderMap::new(), "session"), None);
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(valid_name("session"));
        assert!(valid_name("__Host-session"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a=b"));
        assert!(!valid_name("a;b"));
    }
}
