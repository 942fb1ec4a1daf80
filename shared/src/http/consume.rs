//! `/api/v1` consumption: consume, acknowledge, extend a lease, register a consumer.

use std::time::Duration;

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{JsonBody, queue_api::parse_queue};
use crate::{
    app::AppState,
    auth::Principal,
    domain::DurationInput,
    error::{Error, Result},
    ops::{Consume, Delivered, Receipt, Registration, SettleCommand, SettleKind, Settled},
    ports::GroupRef,
};

/// Most messages one consume call may take.
const MAX_BATCH: u32 = 100;
/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Longest lease.
const MAX_LEASE_MS: u64 = 12 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsumeRequest {
    topic: String,
    group_id: String,
    consumer_id: String,
    max_messages: Option<u32>,
    timeout: Option<DurationInput>,
    visibility_timeout: Option<DurationInput>,
}

pub(super) async fn consume(
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
pub(super) struct AcknowledgeRequest {
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

pub(super) async fn acknowledge(
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
                "status": crate::ops::MessageStatus::of(&done.delivery).as_str(),
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
        "state": crate::ops::MessageStatus::of(&done.delivery).as_str(),
        "delivery_count": done.delivery.delivery_count,
        "acknowledged_at": done.delivery.finished_at.unwrap_or(done.at),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtendRequest {
    message_id: String,
    topic: String,
    group_id: String,
    visibility_timeout: DurationInput,
    receipt_handle: Option<String>,
}

pub(super) async fn extend(
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterRequest {
    consumer_id: String,
    group_id: String,
    topics: Vec<String>,
    max_concurrency: Option<u32>,
    rate_limit: Option<u32>,
}

pub(super) async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    if req.topics.is_empty() || req.topics.len() > 100 {
        return Err(Error::invalid("topics", "must name 1 to 100 topics"));
    }
    let topics = req.topics.iter().map(|t| parse_queue("topics", t)).collect::<Result<Vec<_>>>()?;
    if req.max_concurrency == Some(0) {
        return Err(Error::invalid("max_concurrency", "must be at least 1"));
    }
    if req.rate_limit == Some(0) {
        return Err(Error::invalid("rate_limit", "must be at least 1 message per second"));
    }
    let reg = Registration {
        consumer: identifier("consumer_id", &req.consumer_id)?,
        group: identifier("group_id", &req.group_id)?,
        topics,
        max_concurrency: req.max_concurrency,
        rate_limit: req.rate_limit,
    };
    let c = state.service.register_consumer(&caller, reg).await?;
    let body = json!({
        "consumer_id": c.consumer,
        "group_id": c.group,
        "topics": c.topics,
        "max_concurrency": c.max_concurrency,
        "rate_limit": c.rate_limit,
        "registered_at": c.registered_at,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

/// A group or consumer id: 1 to 255 bytes, no control characters.
pub(super) fn identifier(field: &str, s: &str) -> Result<String> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be 1 to 255 bytes without control characters"));
    }
    Ok(s.to_owned())
}

pub(super) fn receipt(s: Option<&str>) -> Result<Option<Receipt>> {
    s.map(|s| {
        Receipt::parse(s).ok_or_else(|| Error::invalid("receipt_handle", "is not a receipt handle this service issued"))
    })
    .transpose()
}

fn lease_ms(field: &str, d: &DurationInput) -> Result<u64> {
    let ns = d.nanos().map_err(|e| Error::invalid(field, e))?;
    let ms = ns / 1_000_000;
    if !(1..=MAX_LEASE_MS).contains(&ms) {
        return Err(Error::invalid(field, "must be 1ms to 12h"));
    }
    Ok(ms)
}
