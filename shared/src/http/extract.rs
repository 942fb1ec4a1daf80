//! Request extraction: JSON bodies checked for type and size before they are
//! buffered whole, and parse errors turned into precise `details`.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::{app::AppState, error::Error};

/// A JSON body of type `T`; a `BATCH` body may hold many messages.
#[derive(Debug)]
pub struct JsonBody<T, const BATCH: bool = false>(pub T);

impl<T: DeserializeOwned, const BATCH: bool> FromRequest<AppState> for JsonBody<T, BATCH> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        check_content_type(req.headers())?;
        let limit = if BATCH { state.batch_body_limit() } else { state.body_limit() };
        let too_large = |size| Error::PayloadTooLarge { limit: limit as u64, size };
        let declared =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(declared));
        }
        let limit_ms = state.service.config.limits.body_timeout_ms;
        let read = tokio::time::timeout(Duration::from_millis(limit_ms), read_limited(req.into_body(), limit));
        let bytes = read.await.map_err(|_| Error::RequestTimeout { limit_ms })?.map_err(|e| match e {
            ReadError::TooLarge => too_large(declared),
            ReadError::Broken(reason) => Error::invalid("body", reason),
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

enum ReadError {
    TooLarge,
    Broken(String),
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Broken(format!("could not read the request body: {e}"))),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let value = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(unreadable)"));
    let essence = value.map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
        _ => Err(Error::UnsupportedMediaType { content_type: value.unwrap_or("(none)").to_owned() }),
    }
}

/// Parses JSON, naming the field at fault when the shape is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|v| de.end().map(|()| v).map_err(|e| (".".to_owned(), e)));
    parsed.map_err(|(path, inner)| {
        if inner.is_syntax() || inner.is_eof() {
            let reason = if bytes.iter().all(u8::is_ascii_whitespace) {
                "the request body is empty".to_owned()
            } else {
                strip_position(&inner.to_string())
            };
            return Error::InvalidJson { reason, line: inner.line(), column: inner.column() };
        }
        data_error(&path, &strip_position(&inner.to_string()))
    })
}

/// Reads a value already parsed as JSON into `T`, naming the field at fault.
pub(super) fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        data_error(&path, &strip_position(&e.into_inner().to_string()))
    })
}

/// Turns a serde data error into `invalid_request` (or `invalid_message` for the content fields).
pub(super) fn data_error(path: &str, issue: &str) -> Error {
    // serde's path ends at the parent of a missing field, but at an unknown field itself.
    // serde names a missing or repeated field in its message, at its parent's path.
    let named = ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| issue.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match named {
        Some(f) if path == "." => f.to_owned(),
        Some(f) => format!("{path}.{f}"),
        // The whole body has the wrong shape (an array or a string where an object belongs).
        None if path == "." => "body".to_owned(),
        None => path.to_owned(),
    };
    let issue = if issue.starts_with("missing field") {
        "is required".to_owned()
    } else if issue.starts_with("unknown field") {
        format!("is not a known field ({})", issue.split_once(", ").map_or("", |(_, rest)| rest))
    } else {
        issue.to_owned()
    };
    if field == "message" || field == "content" {
        Error::invalid_message(field, issue)
    } else {
        Error::invalid(field, issue)
    }
}

fn strip_position(msg: &str) -> String {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i]).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        queue: String,
        ttl: Option<u64>,
    }

    fn fail(body: &str) -> serde_json::Value {
        let e = parse_json::<Sample>(body.as_bytes()).unwrap_err();
        e.body()
    }

    #[test]
    fn names_the_field_at_fault() {
        assert_eq!(fail(r#"{"ttl": 1}"#)["details"]["field"], "queue");
        assert_eq!(fail(r#"{"queue": "q", "ttl": "x"}"#)["details"]["field"], "ttl");
        assert_eq!(fail(r#"{"queue": "q", "tll": 1}"#)["details"]["field"], "tll");
        assert_eq!(fail(r#"{"queue": 5}"#)["error"], "invalid_request");
        assert_eq!(fail(r#"{"queue": "a", "queue": "b"}"#)["details"]["field"], "queue");
        assert_eq!(fail(r#""text""#)["details"]["field"], "body");
        assert_eq!(fail("null")["details"]["field"], "body");
    }

    #[test]
    fn syntax_errors_say_where() {
        let v = fail("{\"queue\": ");
        assert_eq!(v["error"], "invalid_json");
        assert_eq!(v["details"]["line"], 1);
        assert_eq!(fail("")["details"]["issue"], "the request body is empty");
        assert_eq!(fail(r#"{"queue": "q"} trailing"#)["error"], "invalid_json");
    }
}
