//! `/message-queue/queues`: declare, inspect, list and delete queues.

use axum::{Extension, Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{JsonBody, params::Path, queue_api::parse_queue};
use crate::{
    app::AppState,
    auth::Principal,
    domain::format_duration_ms,
    error::Result,
    ops::{QueueDeclaration, QueueStatus, parse_arguments},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeclareRequest {
    durable: Option<bool>,
    auto_delete: Option<bool>,
    exclusive: Option<bool>,
    arguments: Option<Map<String, Value>>,
    partitions: Option<u32>,
}

pub(super) async fn declare(
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

pub(super) async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let name = parse_queue("queue_name", &name)?;
    Ok(Json(status_json(&state.service.queue_status(&caller, &name).await?)))
}

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>> {
    let queues: Vec<Value> = state.service.list_queues().await?.iter().map(status_json).collect();
    Ok(Json(json!({"total": queues.len(), "queues": queues})))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let name = parse_queue("queue_name", &name)?;
    state.service.delete_queue(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
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
        "statistics": {
            "messages_published": s.messages_published,
            "messages_consumed": s.counters.consumed,
            "messages_acknowledged": s.counters.acknowledged,
            "messages_rejected": s.counters.rejected,
            "messages_redelivered": s.counters.redelivered,
            "messages_requeued": s.counters.requeued,
            "messages_dead_lettered": s.counters.dead_lettered,
            "messages_expired": s.counters.expired,
        },
        "performance": {
            "average_publish_time": format_duration_ms(s.performance.average_publish_ms),
            "average_consume_time": format_duration_ms(s.performance.average_consume_ms),
            "throughput_per_second": s.performance.throughput_per_second,
        },
        "partitions": q.settings.partitions,
        "created_at": q.created_at,
        "last_updated": s.last_updated,
    })
}
