//! `/message-queue/queues` (spec 000): declare, inspect, list and delete queues;
//! `/api/v1/topics` (spec 002): create and inspect topics, answering durations as
//! Go `time.Duration` nanosecond strings.

use axum::{
    Extension, Json, Router,
    extract::State,
    http::StatusCode,
    middleware,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    JsonBody,
    fields::{duration_ms, nanos, parse_queue},
    params::Path,
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    domain::DurationInput,
    error::{Error, Result},
    ops::{QueueDeclaration, QueueStatus, TopicSpec, parse_arguments},
};

/// The queue and topic routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/queues", get(list))
        .route("/message-queue/queues/{queue_name}", get(status).put(declare).delete(delete))
        .route("/api/v1/topics", post(create_topic))
        .route("/api/v1/topics/{name}", get(topic))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareRequest {
    durable: Option<bool>,
    auto_delete: Option<bool>,
    exclusive: Option<bool>,
    arguments: Option<Map<String, Value>>,
    partitions: Option<u32>,
}

async fn declare(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<DeclareRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let name = parse_queue("queue_name", &name)?;
    let decl = QueueDeclaration {
        durable: req.durable.unwrap_or(true),
        auto_delete: req.auto_delete.unwrap_or(false),
        exclusive: req.exclusive.unwrap_or(false),
        arguments: parse_arguments(&req.arguments.unwrap_or_default())?,
        partitions: req.partitions,
    };
    let (status, created) = state.service.declare_queue(&caller, &name, decl).await?;
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(status_json(&status))))
}

async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let name = parse_queue("queue_name", &name)?;
    Ok(Json(status_json(&state.service.queue_status(&caller, &name).await?)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>> {
    let queues: Vec<Value> = state.service.list_queues().await?.iter().map(status_json).collect();
    Ok(Json(json!({"total": queues.len(), "queues": queues})))
}

async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let name = parse_queue("queue_name", &name)?;
    state.service.delete_queue(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts since the queue was made, from the store: true across processes.
fn statistics_json(s: &QueueStatus) -> Value {
    json!({
        "messages_published": s.messages_published,
        "messages_consumed": s.counters.consumed,
        "messages_acknowledged": s.counters.acknowledged,
        "messages_rejected": s.counters.rejected,
        "messages_redelivered": s.counters.redelivered,
        "messages_requeued": s.counters.requeued,
        "messages_dead_lettered": s.counters.dead_lettered,
        "messages_expired": s.counters.expired,
        "window": {"from": s.queue.created_at, "to": s.measured_at},
    })
}

/// Spec 000's queue-status shape, plus the partition count.
fn status_json(s: &QueueStatus) -> Value {
    let q = &s.queue;
    json!({
        "queue": q.name,
        "status": s.state(),
        "message_count": s.message_count,
        "consumer_count": s.consumer_count,
        "durable": q.settings.durable,
        "auto_delete": q.settings.auto_delete,
        "exclusive": q.settings.exclusive,
        "arguments": q.settings.arguments,
        "messages_ready": s.message_count - s.unacknowledged,
        "messages_unacknowledged": s.unacknowledged,
        "statistics": statistics_json(s),
        "performance": super::blocks::performance_json(&s.performance),
        "oldest_unacknowledged_age_seconds": s.oldest_unfinished_seconds(),
        "groups": super::blocks::groups_json(s),
        "partitions": q.settings.partitions,
        "created_at": q.created_at,
        "last_updated": s.last_updated,
    })
}
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTopicRequest {
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

async fn create_topic(
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

async fn topic(
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
        "consumer_groups": super::blocks::groups_json(s),
        "oldest_unacknowledged_age_seconds": s.oldest_unfinished_seconds(),
        "statistics": statistics_json(s),
        "performance": super::blocks::performance_json(&s.performance),
        "created_at": q.created_at,
        "updated_at": q.updated_at,
    })
}
