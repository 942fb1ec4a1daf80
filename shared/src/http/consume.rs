//! `/api/v1` consumption (spec 002): consume messages and extend a lease.

use std::time::Duration;

use axum::{Extension, Json, Router, extract::State, middleware, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    JsonBody,
    fields::{identifier, parse_queue, receipt},
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    domain::DurationInput,
    error::{Error, Result},
    ops::{Consume, Delivered, Receipt, SettleCommand, SettleKind},
    ports::GroupRef,
};

/// The consuming routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/messages/consume", post(consume))
        .route("/api/v1/messages/extend", post(extend))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

/// Most messages one consume call may take.
const MAX_BATCH: u32 = 100;
/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest lease.
const MAX_LEASE_MS: u64 = 12 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeRequest {
    topic: String,
    group_id: String,
    consumer_id: String,
    max_messages: Option<u32>,
    timeout: Option<DurationInput>,
    visibility_timeout: Option<DurationInput>,
}

async fn consume(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<ConsumeRequest>,
) -> Result<Json<Value>> {
    let max = req.max_messages.unwrap_or(1);
    if !(1..=MAX_BATCH).contains(&max) {
        return Err(Error::invalid("max_messages", format!("must be 1 to {MAX_BATCH}")));
    }
    let wait_ns = req.timeout.map(|t| t.nanos().map_err(|e| Error::invalid("timeout", e))).transpose()?.unwrap_or(0);
    if wait_ns > MAX_WAIT.as_nanos() as u64 {
        return Err(Error::invalid("timeout", "must be at most 60s"));
    }
    let cmd = Consume {
        queue: parse_queue("topic", &req.topic)?,
        group: GroupRef::Consumers(identifier("group_id", &req.group_id)?),
        consumer: identifier("consumer_id", &req.consumer_id)?,
        max,
        wait: Duration::from_nanos(wait_ns),
        lease_ms: req.visibility_timeout.map(|v| lease_ms("visibility_timeout", &v)).transpose()?,
    };
    let delivered = state.service.consume(&caller, cmd).await.map_err(Error::as_topic)?;
    let messages: Vec<Value> = delivered.iter().map(delivered_json).collect();
    Ok(Json(json!({
        "topic": req.topic,
        "group_id": req.group_id,
        "consumer_id": req.consumer_id,
        "count": messages.len(),
        "messages": messages,
    })))
}

fn delivered_json(d: &Delivered) -> Value {
    let r = &d.record;
    json!({
        "message_id": d.id.to_string(),
        "topic": d.queue,
        "key": r.key,
        "routing_key": r.routing_key,
        "content": r.content.as_text(),
        "headers": r.headers,
        "priority": r.priority,
        "timestamp": r.published_at,
        "partition": d.id.partition,
        "offset": d.id.offset,
        "delivery_count": d.lease.delivery_count,
        "retry_count": d.lease.retry_count,
        "receipt_handle": Receipt { id: d.id, delivery_count: d.lease.delivery_count }.to_string(),
        "lease_expires_at": d.lease.until,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    message_id: String,
    topic: String,
    group_id: String,
    visibility_timeout: DurationInput,
    receipt_handle: Option<String>,
}

async fn extend(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<ExtendRequest>,
) -> Result<Json<Value>> {
    let cmd = SettleCommand {
        message_id: req.message_id.clone(),
        queue: Some(parse_queue("topic", &req.topic)?),
        group: Some(GroupRef::Consumers(identifier("group_id", &req.group_id)?)),
        receipt: receipt(req.receipt_handle.as_deref())?,
        kind: SettleKind::Extend { lease_ms: lease_ms("visibility_timeout", &req.visibility_timeout)? },
    };
    let done = state.service.settle(&caller, cmd).await.map_err(Error::as_topic)?;
    Ok(Json(json!({
        "message_id": req.message_id,
        "topic": req.topic,
        "group_id": req.group_id,
        "delivery_count": done.delivery.delivery_count,
        "lease_expires_at": done.delivery.until,
    })))
}

fn lease_ms(field: &str, d: &DurationInput) -> Result<u64> {
    let ns = d.nanos().map_err(|e| Error::invalid(field, e))?;
    let ms = ns / 1_000_000;
    if !(1..=MAX_LEASE_MS).contains(&ms) {
        return Err(Error::invalid(field, "must be 1ms to 12h"));
    }
    Ok(ms)
}
