//! JSON request bodies: an extractor whose every rejection is the platform's JSON 400,
//! and serde messages with the offending values taken out.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::Error;

/// serde_json's message without the offending value, which may be a customer's data (a
/// password, an address): such messages end up in logs, dead-letter reasons and
/// responses.
pub fn without_values(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let text = match (
        text.find("invalid type: ")
            .or_else(|| text.find("invalid value: ")),
        text.find(", expected"),
    ) {
        (Some(start), Some(expected)) if expected > start => {
            format!(
                "{}invalid type or value{}",
                &text[..start],
                &text[expected..]
            )
        }
        _ => text,
    };
    if err.line() > 0 && !text.contains(" at line ") {
        format!("{text} at line {} column {}", err.line(), err.column())
    } else {
        text
    }
}

/// A JSON body of type `T`. Unlike axum's `Json`, a body that is missing, malformed or of
/// the wrong shape is a JSON `400` saying what is wrong (never echoing values), and the
/// content type is not required, as API Gateway clients often omit it.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::BadRequest(format!("invalid JSON body: {}", without_values(&e))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    async fn parse(body: &'static str) -> Result<Login, Error> {
        let request = Request::builder()
            .method("POST")
            .body(axum::body::Body::from(body))
            .expect("request");
        JsonBody::<Login>::from_request(request, &())
            .await
            .map(|b| b.0)
    }

    #[tokio::test]
    async fn rejections_are_400s_that_never_echo_values() {
        let missing = parse(r#"{"email": "a@b.c"}"#).await.expect_err("missing");
        assert_eq!(missing.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            missing.to_string().contains("missing field `password`"),
            "{missing}"
        );
        let typed = parse(r#"{"email": "a@b.c", "password": 12345678}"#)
            .await
            .expect_err("wrong type");
        assert!(!typed.to_string().contains("12345678"), "{typed}");
        assert!(parse("").await.is_err());
        assert!(parse("{not json").await.is_err());
        assert!(
            parse(r#"{"email": "a@b.c", "password": "x"}"#)
                .await
                .is_ok()
        );
    }
}
