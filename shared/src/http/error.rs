//! Writes an [`Error`] as the spec's body `{"error","message","details"}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::error::Error;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match &self {
            Self::Internal { reason } => tracing::error!(%reason, "internal error"),
            Self::Unavailable { reason } => tracing::warn!(%reason, "backend unavailable"),
            _ => {}
        }
        let body = json!({"error": self.code(), "message": self.to_string(), "details": self.details()});
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::RequestTimeout { .. } | Self::PayloadTooLarge { .. }) {
            // The body was not read whole: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Self::Unauthorized { presented, .. } = &self {
            // RFC 6750 3.1: no error code when the request carried no credentials.
            let challenge = if *presented { "Bearer error=\"invalid_token\"" } else { "Bearer" };
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
