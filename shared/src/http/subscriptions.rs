//! `/message-queue/subscriptions`: list, read, pause, resume, rotate the secret, delete.

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    params::{Path, Query},
    parse_json,
    queue_api::parse_queue,
};
use crate::{app::AppState, auth::Principal, error::Result, ports::Subscription};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    queue: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let queue = q.queue.as_deref().map(|name| parse_queue("queue", name)).transpose()?;
    let subs = state.service.list_subscriptions(&caller, queue.as_ref()).await?;
    let items: Vec<Value> = subs.iter().map(view).collect();
    Ok(Json(json!({"total": items.len(), "subscriptions": items})))
}

pub(super) async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(view(&state.service.subscription(&caller, &id).await?)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.service.delete_subscription(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseRequest {
    reason: Option<String>,
}

pub(super) async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    // The body is optional: `{"reason": "..."}` or nothing.
    let request: PauseRequest =
        if body.iter().all(u8::is_ascii_whitespace) { PauseRequest::default() } else { parse_json(&body)? };
    let reason = request.reason.unwrap_or_else(|| "paused by request".into());
    Ok(Json(view(&state.service.set_paused(&caller, &id, Some(reason)).await?)))
}

pub(super) async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(view(&state.service.set_paused(&caller, &id, None).await?)))
}

pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let sub = state.service.rotate_secret(&caller, &id).await?;
    let mut body = view(&sub);
    body["secret"] = json!(sub.secret);
    Ok(Json(body))
}

/// A subscription as read back: without its headers or secret.
fn view(sub: &Subscription) -> Value {
    let mut body = super::queue_api::subscription_json(sub);
    if let Some(map) = body.as_object_mut() {
        map.remove("secret");
        map.insert("paused_reason".into(), json!(sub.paused_reason));
        map.insert("updated_at".into(), json!(sub.updated_at));
    }
    body
}
