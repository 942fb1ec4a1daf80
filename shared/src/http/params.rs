//! Path and query parameters, refused in the error shape: a path segment that is
//! not UTF-8 once decoded, or a query string of the wrong shape, is a 400 naming it.

use axum::{
    extract::{FromRequestParts, path::ErrorKind, rejection::PathRejection},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use super::extract::data_error;
use crate::error::Error;

/// Path parameters of type `T`.
#[derive(Debug)]
pub(super) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    Error::invalid(key, "is not valid UTF-8 once percent-decoded")
                }
                ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
                    Error::invalid(key, format!("{value:?} is not a valid {expected_type}"))
                }
                other => Error::invalid("path", other.to_string()),
            }),
            Err(other) => Err(Error::Internal { reason: format!("path parameters: {}", other.body_text()) }),
        }
    }
}

/// The query string read as `T`; an absent query is an empty one.
#[derive(Debug)]
pub(super) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            match data_error(&path, &e.into_inner().to_string()) {
                Error::InvalidRequest { field, issue } if field == "body" => Error::invalid("query", issue),
                other => other,
            }
        })
    }
}
