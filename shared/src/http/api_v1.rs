//! `/api/v1` messages and topics (spec 002). Durations are answered as Go
//! `time.Duration` nanosecond strings, as the spec writes them.

use std::collections::BTreeMap;

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{JsonBody, extract::parse_value, params::Path, queue_api::parse_queue};
use crate::{
    app::AppState,
    auth::Principal,
    domain::{DurationInput, RoutingKey},
    error::{Error, Result},
    ops::{Publish, Published, QueueStatus, TopicSpec},
    ports::Content,
};

/// Longest partitioning key, in bytes.
const MAX_KEY: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProduceRequest {
    topic: String,
    key: Option<String>,
    content: String,
    headers: Option<BTreeMap<String, String>>,
    priority: Option<u8>,
    ttl: Option<DurationInput>,
}

pub(super) async fn produce(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<ProduceRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let done = state.service.publish(&caller, produce_command(req)?).await.map_err(Error::as_topic)?;
    Ok((StatusCode::CREATED, Json(produced_json(&done))))
}

/// Most messages in one batch.
const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchRequest {
    messages: Vec<Value>,
}

/// `POST /api/v1/messages/batch`: each message is checked and answered on its own.
pub(super) async fn produce_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<BatchRequest, true>,
) -> Result<Json<Value>> {
    if req.messages.is_empty() || req.messages.len() > MAX_BATCH {
        return Err(Error::invalid("messages", format!("must hold 1 to {MAX_BATCH} messages")));
    }
    let mut outcomes: Vec<Option<Value>> = vec![None; req.messages.len()];
    let (mut indexes, mut cmds) = (Vec::new(), Vec::new());
    for (index, item) in req.messages.into_iter().enumerate() {
        match parse_value::<ProduceRequest>(item).and_then(produce_command) {
            Ok(cmd) => {
                indexes.push(index);
                cmds.push(cmd);
            }
            Err(e) => outcomes[index] = Some(item_error(index, e)),
        }
    }
    for (index, result) in indexes.into_iter().zip(state.service.publish_many(&caller, cmds).await) {
        outcomes[index] = Some(match result {
            Ok(done) => {
                let mut body = produced_json(&done);
                body["index"] = json!(index);
                body["status"] = json!(201);
                body
            }
            Err(e) => item_error(index, e.as_topic()),
        });
    }
    let results: Vec<Value> = outcomes.into_iter().flatten().collect();
    let failed = results.iter().filter(|r| r["status"] != 201).count();
    Ok(Json(json!({"succeeded": results.len() - failed, "failed": failed, "results": results})))
}

fn item_error(index: usize, e: Error) -> Value {
    e.item_body(json!({"index": index}))
}

fn produce_command(req: ProduceRequest) -> Result<Publish> {
    if req.content.is_empty() {
        return Err(Error::invalid_message("content", "Message content is required"));
    }
    if req.key.as_ref().is_some_and(|k| k.len() > MAX_KEY) {
        return Err(Error::invalid("key", format!("must be at most {MAX_KEY} bytes")));
    }
    let headers: Map<String, Value> =
        req.headers.unwrap_or_default().into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Ok(Publish {
        queue: parse_queue("topic", &req.topic)?,
        routing_key: req.key.as_deref().and_then(|k| RoutingKey::parse(k).ok()).map(String::from),
        key: req.key,
        content: Content::Text(req.content),
        headers,
        priority: req.priority,
        ttl_ms: req.ttl.map(|t| duration_ms("ttl", &t)).transpose()?,
        persistent: true,
    })
}

fn produced_json(done: &Published) -> Value {
    json!({
        "message_id": done.id.to_string(),
        "topic": done.queue.name,
        "key": done.record.key,
        "partition": done.id.partition,
        "offset": done.id.offset,
        "timestamp": done.record.published_at,
        "ttl": nanos(done.record.ttl_ms),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateTopicRequest {
    name: String,
    partitions: Option<u32>,
    replication: Option<u32>,
    retention: Option<DurationInput>,
    max_size: Option<SizeInput>,
}

/// A byte count as a JSON number or a decimal string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeInput {
    Number(u64),
    Text(String),
}

pub(super) async fn create_topic(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateTopicRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let replication = req.replication.unwrap_or(1);
    if !(1..=32_767).contains(&replication) {
        return Err(Error::invalid("replication", "must be 1 to 32767"));
    }
    let max_bytes = match req.max_size {
        None => None,
        Some(SizeInput::Number(n)) => Some(n),
        Some(SizeInput::Text(s)) => {
            Some(s.trim().parse().map_err(|_| Error::invalid("max_size", "must be a number of bytes"))?)
        }
    };
    if max_bytes == Some(0) {
        return Err(Error::invalid("max_size", "must be at least 1 byte"));
    }
    let spec = TopicSpec {
        name: parse_queue("name", &req.name)?,
        partitions: req.partitions,
        replication,
        retention_ms: req.retention.map(|r| duration_ms("retention", &r)).transpose()?,
        max_bytes,
    };
    let status = state.service.create_topic(spec).await?;
    Ok((StatusCode::CREATED, Json(topic_json(&state, &status))))
}

pub(super) async fn topic(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let name = parse_queue("name", &name)?;
    let status = state.service.queue_status(&caller, &name).await.map_err(Error::as_topic)?;
    Ok(Json(topic_json(&state, &status)))
}

fn topic_json(state: &AppState, s: &QueueStatus) -> Value {
    let q = &s.queue;
    let retention = q.settings.retention_ms.unwrap_or(state.service.config.default_retention_ms);
    let offsets: Vec<Value> = s
        .partitions
        .iter()
        .map(|p| json!({"partition": p.partition, "start_offset": p.start_offset, "end_offset": p.end_offset}))
        .collect();
    json!({
        "name": q.name,
        "partitions": q.settings.partitions,
        "replication": q.settings.replication,
        "retention": nanos(retention),
        "max_size": q.settings.max_bytes.map(|b| b.to_string()),
        "message_count": s.message_count,
        "messages_published": s.messages_published,
        "consumer_count": s.consumer_count,
        "partition_offsets": offsets,
        "created_at": q.created_at,
        "updated_at": q.updated_at,
    })
}

/// A request duration in whole milliseconds, at least one.
fn duration_ms(field: &str, d: &DurationInput) -> Result<u64> {
    let ns = d.nanos().map_err(|e| Error::invalid(field, e))?;
    if ns < 1_000_000 {
        return Err(Error::invalid(field, "must be at least 1ms"));
    }
    Ok(ns / 1_000_000)
}

fn nanos(ms: u64) -> String {
    (u128::from(ms) * 1_000_000).to_string()
}
