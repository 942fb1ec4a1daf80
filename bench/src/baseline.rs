//! The baseline: a minimal axum handler that answers a fixed JSON body, on the
//! same runtime settings as the service, so figures can be read as ratios. A second
//! route first checks the bearer token with the service's own authenticator, to price
//! that part alone.

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};
use shared::auth::{Authenticator, JwtConfig};

use crate::server::SECRET;

pub(crate) async fn serve() -> Result<(), String> {
    let config = JwtConfig { secret: None, issuer: None, audience: None, leeway_secs: 30 };
    let app = Router::new()
        .route("/baseline", post(answer))
        .route("/baseline/authorized", post(authorized))
        .with_state(Arc::new(Authenticator::new(SECRET, &config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    println!("baseline listening on http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

async fn answer() -> Json<Value> {
    Json(json!({"message_id": "msg_04000", "queue": "bench", "published": true, "partition": 0, "offset": 0}))
}

/// [`answer`], once the `Authorization` header passes the service's check.
async fn authorized(State(auth): State<Arc<Authenticator>>, headers: HeaderMap) -> Result<Json<Value>, StatusCode> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    auth.verify(header).map_err(|_| StatusCode::UNAUTHORIZED)?;
    Ok(answer().await)
}
