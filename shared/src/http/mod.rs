//! The HTTP adapter: one axum router for both path families. Handlers parse
//! into commands, call one operation and map the result; the local server
//! mounts every route, a Lambda function mounts its own.

mod api_v1;
mod consume;
mod error;
mod extract;
mod health;
mod params;
mod queue_admin;
mod queue_api;
mod settle;
mod subscriptions;

use axum::{
    Router,
    extract::{Request, State},
    http::{Method, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};

pub use extract::{JsonBody, parse_json};

use crate::{app::AppState, error::Error};

/// Every route of both families.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/message-queue/publish", post(queue_api::publish))
        .route("/message-queue/subscribe", post(queue_api::subscribe))
        .route("/message-queue/subscriptions", get(subscriptions::list))
        .route("/message-queue/subscriptions/{subscription_id}", get(subscriptions::read).delete(subscriptions::delete))
        .route("/message-queue/subscriptions/{subscription_id}/pause", post(subscriptions::pause))
        .route("/message-queue/subscriptions/{subscription_id}/resume", post(subscriptions::resume))
        .route("/message-queue/subscriptions/{subscription_id}/secret", post(subscriptions::rotate_secret))
        .route("/message-queue/messages/{message_id}", get(queue_api::message))
        .route("/message-queue/messages/{message_id}/acknowledge", post(settle::acknowledge))
        .route("/message-queue/messages/{message_id}/reject", post(settle::reject))
        .route("/message-queue/queues", get(queue_admin::list))
        .route(
            "/message-queue/queues/{queue_name}",
            get(queue_admin::status).put(queue_admin::declare).delete(queue_admin::delete),
        )
        .route("/api/v1/messages", post(api_v1::produce))
        .route("/api/v1/messages/batch", post(api_v1::produce_batch))
        .route("/api/v1/messages/consume", post(consume::consume))
        .route("/api/v1/messages/acknowledge", post(consume::acknowledge))
        .route("/api/v1/messages/extend", post(consume::extend))
        .route("/api/v1/consumers", post(consume::register))
        .route("/api/v1/topics", post(api_v1::create_topic))
        .route("/api/v1/topics/{name}", get(api_v1::topic))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(protected)
        .route("/health", get(health::v1))
        .route("/message-queue/health", get(health::message_queue))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::map_response(error_shape))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// Verifies the bearer token and hands the principal to the handler.
async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, Error> {
    let header = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let principal = state.auth.verify(header)?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    state.service.metrics.record_request(response.status().is_server_error());
    response
}

/// Puts an error answer that is not in the error shape (a framework's plain-text
/// rejection) into it, keeping its status and headers.
async fn error_shape(response: Response) -> Response {
    let status = response.status();
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let reason = match axum::body::to_bytes(body, 4096).await {
        Ok(text) if !text.is_empty() => String::from_utf8_lossy(&text).into_owned(),
        _ => status.canonical_reason().unwrap_or("refused").to_owned(),
    };
    let mut shaped = Error::Rejected { status: status.as_u16(), reason }.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name, value.clone());
        }
    }
    shaped
}

async fn not_found(method: Method, uri: Uri) -> Error {
    Error::RouteNotFound { method: method.to_string(), path: uri.path().to_owned() }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Error {
    Error::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::StatusCode};

    use super::*;

    #[tokio::test]
    async fn plain_text_refusals_are_put_in_the_error_shape() {
        let plain = (StatusCode::BAD_REQUEST, [(header::ALLOW, "GET")], "Invalid URL: bad segment").into_response();
        let shaped = error_shape(plain).await;
        assert_eq!(shaped.status(), StatusCode::BAD_REQUEST);
        assert_eq!(shaped.headers()[header::ALLOW], "GET");
        let body = axum::body::to_bytes(shaped.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["details"]["reason"], "Invalid URL: bad segment");
        let empty = Response::builder().status(StatusCode::PAYLOAD_TOO_LARGE).body(Body::empty()).unwrap();
        let body = axum::body::to_bytes(error_shape(empty).await.into_body(), 4096).await.unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"], "payload_too_large");
    }
}
