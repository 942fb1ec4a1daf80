//! `/message-queue/messages/{id}/acknowledge` and `/reject` (spec 000).

use axum::{Extension, Json, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    JsonBody,
    consume::{identifier, receipt},
    params::Path,
};
use crate::{
    app::AppState,
    auth::Principal,
    error::{Error, Result},
    ops::{MessageStatus, SettleCommand, SettleKind, Settled},
    ports::GroupRef,
};

/// Longest requeue delay: 12 hours.
const MAX_DELAY_MS: u64 = 12 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcknowledgeRequest {
    acknowledged_by: Option<String>,
    processing_time: Option<u64>,
    success: Option<bool>,
    notes: Option<String>,
    group_id: Option<String>,
    subscription_id: Option<String>,
    receipt_handle: Option<String>,
}

pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(message_id): Path<String>,
    JsonBody(req): JsonBody<AcknowledgeRequest>,
) -> Result<Json<Value>> {
    let success = req.success.unwrap_or(true);
    let cmd = SettleCommand {
        message_id: message_id.clone(),
        queue: None,
        group: group(req.group_id.as_deref(), req.subscription_id.as_deref())?,
        receipt: receipt(req.receipt_handle.as_deref())?,
        kind: if success { SettleKind::Acknowledge } else { SettleKind::Requeue { delay_ms: 0 } },
    };
    let done = state.service.settle(&caller, cmd).await?;
    Ok(Json(json!({
        "message_id": message_id,
        "acknowledged": success,
        "acknowledged_at": done.delivery.finished_at.unwrap_or(done.at),
        "acknowledged_by": req.acknowledged_by,
        "processing_time": req.processing_time,
        "success": success,
        "notes": req.notes,
        "group": done.delivery.group.name(),
        "status": MessageStatus::of(&done.delivery).as_str(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RejectRequest {
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

pub(super) async fn reject(
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
    let cmd = SettleCommand {
        message_id: message_id.clone(),
        queue: None,
        group: group(req.group_id.as_deref(), req.subscription_id.as_deref())?,
        receipt: receipt(req.receipt_handle.as_deref())?,
        kind: if requeue {
            SettleKind::Requeue { delay_ms }
        } else {
            SettleKind::Reject { reason: req.reason.clone() }
        },
    };
    let done: Settled = state.service.settle(&caller, cmd).await?;
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

/// The group a spec-000 settlement names, if any.
fn group(group_id: Option<&str>, subscription_id: Option<&str>) -> Result<Option<GroupRef>> {
    match (group_id, subscription_id) {
        (Some(_), Some(_)) => Err(Error::invalid("group_id", "name a group_id or a subscription_id, not both")),
        (Some(g), None) => Ok(Some(GroupRef::Consumers(identifier("group_id", g)?))),
        (None, Some(s)) => Ok(Some(GroupRef::Subscription(identifier("subscription_id", s)?))),
        (None, None) => Ok(None),
    }
}
