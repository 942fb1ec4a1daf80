//! Acknowledgement: `POST /api/v1/messages/acknowledge` (spec 002) and
//! `POST /message-queue/messages/{message_id}/acknowledge` (spec 000).

use axum::{Extension, Json, Router, extract::State, middleware, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    JsonBody,
    fields::{Target, identifier, parse_queue, receipt},
    params::Path,
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    error::{Error, Result},
    ops::{MessageStatus, SettleCommand, SettleKind, Settled},
    ports::GroupRef,
};

/// The acknowledgement routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/messages/acknowledge", post(acknowledge))
        .route("/message-queue/messages/{message_id}/acknowledge", post(acknowledge_message))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeRequest {
    message_id: Option<String>,
    /// Many messages at once (as Pub/Sub's acknowledge takes many ack ids).
    messages: Option<Vec<AcknowledgeItem>>,
    topic: String,
    success: bool,
    group_id: String,
    receipt_handle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeItem {
    message_id: String,
    receipt_handle: Option<String>,
}

/// Most messages one acknowledgement may name.
const MAX_ACKS: usize = 100;

async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<AcknowledgeRequest>,
) -> Result<Json<Value>> {
    let queue = parse_queue("topic", &req.topic)?;
    let group = GroupRef::Consumers(identifier("group_id", &req.group_id)?);
    let kind = if req.success { SettleKind::Acknowledge } else { SettleKind::Requeue { delay_ms: 0 } };
    let command = |message_id: String, handle: Option<&str>| -> Result<SettleCommand> {
        Ok(SettleCommand {
            message_id,
            queue: Some(queue.clone()),
            group: Some(group.clone()),
            receipt: receipt(handle)?,
            kind: kind.clone(),
        })
    };
    let items = match (req.message_id, req.messages) {
        (Some(id), None) => {
            let done = state.service.settle(&caller, command(id.clone(), req.receipt_handle.as_deref())?).await;
            let done = done.map_err(Error::as_topic)?;
            return Ok(Json(json!({
                "message_id": id,
                "topic": req.topic,
                "group_id": req.group_id,
                "success": req.success,
                "status": MessageStatus::of(&done.delivery).as_str(),
                "delivery_count": done.delivery.delivery_count,
                "acknowledged_at": done.delivery.finished_at.unwrap_or(done.at),
            })));
        }
        (None, Some(items)) if req.receipt_handle.is_none() && (1..=MAX_ACKS).contains(&items.len()) => items,
        (None, Some(_)) => {
            return Err(Error::invalid(
                "messages",
                format!("must hold 1 to {MAX_ACKS} items, each with its own receipt_handle"),
            ));
        }
        _ => return Err(Error::invalid("message_id", "name one message_id, or a list of messages, not both")),
    };
    let ids: Vec<String> = items.iter().map(|i| i.message_id.clone()).collect();
    let cmds =
        items.into_iter().map(|i| command(i.message_id, i.receipt_handle.as_deref())).collect::<Result<Vec<_>>>()?;
    let results: Vec<Value> = ids
        .iter()
        .zip(state.service.settle_many(&caller, cmds).await)
        .map(|(id, outcome)| match outcome {
            Ok(done) => acknowledged_json(id, &done),
            Err(e) => e.as_topic().item_body(json!({"message_id": id})),
        })
        .collect();
    let failed = results.iter().filter(|r| r["status"] != 200).count();
    Ok(Json(json!({
        "topic": req.topic,
        "group_id": req.group_id,
        "success": req.success,
        "succeeded": results.len() - failed,
        "failed": failed,
        "results": results,
    })))
}

fn acknowledged_json(message_id: &str, done: &Settled) -> Value {
    json!({
        "message_id": message_id,
        "status": 200,
        "state": MessageStatus::of(&done.delivery).as_str(),
        "delivery_count": done.delivery.delivery_count,
        "acknowledged_at": done.delivery.finished_at.unwrap_or(done.at),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeMessageRequest {
    acknowledged_by: Option<String>,
    processing_time: Option<u64>,
    success: Option<bool>,
    notes: Option<String>,
    group_id: Option<String>,
    subscription_id: Option<String>,
    receipt_handle: Option<String>,
}

async fn acknowledge_message(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(message_id): Path<String>,
    JsonBody(req): JsonBody<AcknowledgeMessageRequest>,
) -> Result<Json<Value>> {
    let success = req.success.unwrap_or(true);
    let target = Target {
        group_id: req.group_id.as_deref(),
        subscription_id: req.subscription_id.as_deref(),
        receipt_handle: req.receipt_handle.as_deref(),
    };
    let kind = if success { SettleKind::Acknowledge } else { SettleKind::Requeue { delay_ms: 0 } };
    let done = state.service.settle(&caller, target.command(&message_id, kind)?).await?;
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
