//! `POST /message-queue/messages/{message_id}/reject` (spec 000).

use axum::{Extension, Json, Router, extract::State, middleware, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, fields::Target, params::Path, require_token};
use crate::{
    app::AppState,
    auth::Principal,
    error::{Error, Result},
    ops::{MessageStatus, SettleKind, Settled},
};

/// The reject route, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/messages/{message_id}/reject", post(reject))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

/// Longest requeue delay: 12 hours.
const MAX_DELAY_MS: u64 = 12 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectRequest {
    rejected_by: Option<String>,
    reason: Option<String>,
    requeue: Option<bool>,
    /// Accepted as spec 000 writes it; the answer reports the service's own count.
    #[allow(dead_code)]
    retry_count: Option<u32>,
    delay_ms: Option<u64>,
    group_id: Option<String>,
    subscription_id: Option<String>,
    receipt_handle: Option<String>,
}

async fn reject(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(message_id): Path<String>,
    JsonBody(req): JsonBody<RejectRequest>,
) -> Result<Json<Value>> {
    let requeue = req.requeue.unwrap_or(true);
    let delay_ms = req.delay_ms.unwrap_or(0);
    if delay_ms > MAX_DELAY_MS {
        return Err(Error::invalid("delay_ms", format!("must be at most {MAX_DELAY_MS}")));
    }
    if !requeue && req.delay_ms.is_some() {
        return Err(Error::invalid("delay_ms", "only applies when requeue is true"));
    }
    let target = Target {
        group_id: req.group_id.as_deref(),
        subscription_id: req.subscription_id.as_deref(),
        receipt_handle: req.receipt_handle.as_deref(),
    };
    let kind =
        if requeue { SettleKind::Requeue { delay_ms } } else { SettleKind::Reject { reason: req.reason.clone() } };
    let done: Settled = state.service.settle(&caller, target.command(&message_id, kind)?).await?;
    Ok(Json(json!({
        "message_id": message_id,
        "rejected": true,
        "rejected_at": done.at,
        "rejected_by": req.rejected_by,
        "reason": req.reason,
        "requeued": requeue,
        "retry_count": done.delivery.retry_count,
        "dead_lettered": done.dead_lettered,
        "group": done.delivery.group.name(),
        "status": MessageStatus::of(&done.delivery).as_str(),
        "available_at": if requeue { done.delivery.until } else { None },
    })))
}
