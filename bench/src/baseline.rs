//! The baseline: a minimal axum handler that answers a fixed JSON body, on the
//! same runtime settings as the service, so figures can be read as ratios.

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

pub(crate) async fn serve() -> Result<(), String> {
    let app = Router::new().route("/baseline", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    println!("baseline listening on http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

async fn answer() -> Json<Value> {
    Json(json!({"message_id": "msg_04000", "queue": "bench", "published": true, "partition": 0, "offset": 0}))
}
