//! Writes an [`Error`] as the spec's body `{"error","message","details"}`.

use crate::error::Error;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match &self {
            Self::Internal { reason } => tracing::error!(%reason, "internal error"),
            Self::Unavailable { reason, .. } => tracing::warn!(%reason, "backend unavailable"),
            _ => {}
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Self::Unavailable { retry_after_secs, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::error::StoreError;

    #[tokio::test]
    async fn an_unavailable_store_is_503_with_retry_after_in_the_error_shape() {
        let busy =
            StoreError::Unavailable { reason: "throttled".into(), retry_after: Some(Duration::from_millis(2500)) };
        let response = Error::from(busy).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "service_unavailable");
        assert_eq!(body["details"]["retry_after"], 3);
        let unhinted = Error::from(StoreError::unavailable("down")).into_response();
        assert_eq!(unhinted.headers()[header::RETRY_AFTER], "1");
        let broken = Error::from(StoreError::Failed("unreadable document".into())).into_response();
        assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
