//! The HTTP adapter, one module per endpoint group. Each group's `routes` answers
//! its paths of both families, all but `health`'s behind the bearer token. Handlers
//! parse into commands, call one operation and map the result.
//!
//! [`serve`] adds what every entry point needs to a set of routes: the fallbacks
//! for unknown paths and methods, the error shape, and the request id, span and count
//! of every request ([`observe`]). The local
//! server serves [`router`], every group merged; a Lambda function serves one
//! group, as `serve(state.clone(), publish::routes(&state))`.

pub mod acknowledge;
mod blocks;
pub mod consume;
pub mod consumers;
pub mod dashboard;
mod error;
mod extract;
mod fields;
pub mod health;
pub mod messages;
pub mod metrics;
mod observe;
mod params;
pub mod publish;
pub mod queues;
pub mod reject;
pub mod subscriptions;

use axum::{
    Router,
    extract::{Request, State},
    http::{Method, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};

pub use extract::{JsonBody, parse_json};

use crate::{app::AppState, error::Error};

/// Every route of both families.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(publish::routes(&state))
        .merge(subscriptions::routes(&state))
        .merge(messages::routes(&state))
        .merge(acknowledge::routes(&state))
        .merge(reject::routes(&state))
        .merge(queues::routes(&state))
        .merge(consume::routes(&state))
        .merge(consumers::routes(&state))
        .merge(health::routes(&state))
        .merge(metrics::routes(&state))
        .merge(dashboard::routes());
    serve(state, routes)
}

/// `routes` as an entry point serves them: an unknown path or method answered in
/// the error shape, framework refusals put in it, and every answer counted.
pub fn serve(state: AppState, routes: Router<AppState>) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::map_response(error_shape))
        .layer(middleware::from_fn(observe::observe))
        .with_state(state)
}

/// Verifies the bearer token and hands the principal to the handler.
async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, Error> {
    let header = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let principal = state.auth.verify(header)?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
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

    /// A group served alone, on the SQLite backend.
    #[cfg(feature = "sqlite")]
    mod served_alone {
        use axum::{body::Body, http::StatusCode};
        use serde_json::Value;
        use tower_service::Service;

        use super::super::*;
        use crate::{app::App, auth::issue_token, config::Config};

        async fn send(app: &mut Router, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(token) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            std::future::poll_fn(|cx| Service::<Request>::poll_ready(app, cx)).await.unwrap();
            let response = app.call(request.body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice(&body).unwrap())
        }

        #[tokio::test]
        async fn answers_its_own_routes_and_404s_the_others() {
            let dir = tempfile::tempdir().unwrap();
            let data_dir = dir.path().to_str().unwrap().to_owned();
            let config =
                Config::from_lookup(|name| (name == "MESSAGE_QUEUE_DATA_DIR").then(|| data_dir.clone())).unwrap();
            let secret = "a-test-secret-of-at-least-32-bytes";
            let token = issue_token(secret, &config.jwt, "tester", 60);
            let state = App::from_config(config, secret).await.unwrap();
            let mut app = serve(state.clone(), queues::routes(&state));

            let (status, body) = send(&mut app, Method::GET, "/message-queue/queues", Some(&token)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["total"], 0);
            let (status, body) = send(&mut app, Method::GET, "/message-queue/queues", None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"], "unauthorized");
            let (status, body) = send(&mut app, Method::PATCH, "/message-queue/queues", Some(&token)).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(body["error"], "method_not_allowed");
            for (method, path) in [(Method::POST, "/message-queue/publish"), (Method::GET, "/health")] {
                let (status, body) = send(&mut app, method.clone(), path, Some(&token)).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
                assert_eq!(body["error"], "not_found");
                assert_eq!(body["details"]["path"], path);
            }
        }
    }
}
