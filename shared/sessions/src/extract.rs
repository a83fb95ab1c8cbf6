//! The axum extractor for handlers that need a logged-in user.

use axum::extract::{FromRef, FromRequestParts};
use celeriac_platform::Error;
use http::request::Parts;

use crate::cookie;
use crate::store::{Session, SessionToken, Sessions};

/// The caller's live session, from `Authorization: Bearer <token>` or else the session
/// cookie. The router's state must give out the [`Sessions`] (`impl FromRef<AppState> for
/// Sessions`). Rejects with 401 (`unauthorized`) when no valid session is presented and
/// 503 (`unavailable`) when the store cannot say.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Whose session it is.
    pub user_id: String,
    /// The session record.
    pub session: Session,
    /// The token presented, for logout ([`Sessions::destroy`]).
    pub token: SessionToken,
}

/// The token in the request, if any: the Bearer credential first, then the cookie. Login
/// uses it to end whatever session the client arrived with (fixation).
pub fn presented<'a>(parts: &'a Parts, cookie_name: &str) -> Option<&'a str> {
    presented_in(&parts.headers, cookie_name)
}

/// [`presented`], from the headers alone.
pub fn presented_in<'a>(headers: &'a http::HeaderMap, cookie_name: &str) -> Option<&'a str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    bearer.or_else(|| cookie::find(headers, cookie_name))
}

/// Whose session `headers` carry, for routes that anyone may call but that show more to
/// the right user (a task's status): `None` when no credential is presented at all, the
/// user when it is valid, and 401 when one is presented but is invalid or expired (the
/// client believes it is logged in and should be told it is not).
pub async fn caller(
    sessions: &Sessions,
    headers: &http::HeaderMap,
) -> Result<Option<String>, Error> {
    match presented_in(headers, &sessions.config().cookie_name) {
        None => Ok(None),
        Some(token) => Ok(Some(sessions.authenticate(token).await?.user_id)),
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let sessions = Sessions::from_ref(state);
        let presented = presented(parts, &sessions.config().cookie_name).ok_or_else(|| {
            Error::Unauthorized(
                "log in first: send Authorization: Bearer <token> or the session cookie".into(),
            )
        })?;
        let session = sessions.authenticate(presented).await?;
        let token = SessionToken::parse(presented)
            .ok_or_else(|| Error::Unauthorized("session is missing, invalid or expired".into()))?;
        Ok(Self {
            user_id: session.user_id.clone(),
            session,
            token,
        })
    }
}
