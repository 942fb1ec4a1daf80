//! `GET /message-queue/messages/{message_id}` (spec 000): a message and its state per group; and
//! `GET /message-queue/queues/{queue_name}/messages`: a queue's newest messages, read without
//! delivering them (what the dashboard shows of dead-letter queues).

use axum::{Extension, Json, Router, extract::State, middleware, routing::get};
use serde_json::{Value, json};

use super::{
    params::{Path, Query},
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    error::Result,
    ops::{MessageStatus, MessageView},
    ports::{Delivery, DeliveryState, GroupRef},
};

/// The message lookup route, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/messages/{message_id}", get(message))
        .route("/message-queue/queues/{queue_name}/messages", get(latest))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

async fn message(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(message_id): Path<String>,
) -> Result<Json<Value>> {
    let view = state.service.message(&caller, &message_id).await?;
    Ok(Json(message_json(&view)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeekQuery {
    limit: Option<u32>,
}

async fn latest(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<PeekQuery>,
) -> Result<Json<Value>> {
    let name = super::fields::parse_queue("queue_name", &name)?;
    let (queue, found) = state.service.latest_messages(&caller, &name, q.limit.unwrap_or(10)).await?;
    let messages: Vec<Value> = found
        .iter()
        .map(|(id, r)| {
            json!({
                "message_id": id.to_string(),
                "routing_key": r.routing_key,
                "message": r.content.to_json(),
                "headers": r.headers,
                "published_at": r.published_at,
                "partition": id.partition,
                "offset": id.offset,
            })
        })
        .collect();
    Ok(Json(json!({"queue": queue.name, "total": messages.len(), "messages": messages})))
}

fn message_json(v: &MessageView) -> Value {
    let r = &v.record;
    json!({
        "message_id": v.id.to_string(),
        "queue": v.queue.name,
        "routing_key": r.routing_key,
        "message": r.content.to_json(),
        "headers": r.headers,
        "status": v.status.as_str(),
        "published_at": r.published_at,
        "consumed_at": v.consumed_at(),
        "acknowledged_at": v.acknowledged_at(),
        "ttl": r.ttl_ms.div_ceil(1000),
        "persistent": r.persistent,
        "retry_count": v.retry_count(),
        "redelivery_count": v.redelivery_count(),
        "key": r.key,
        "priority": r.priority,
        "partition": v.id.partition,
        "offset": v.id.offset,
        "expires_at": r.expires_at(),
        "deliveries": v.deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
        "attempts": v.attempts.iter().map(|a| json!({
            "subscription_id": a.group.name(),
            "at": a.at,
            "status_code": a.status,
            "latency_ms": a.latency_ms,
            "error": a.error,
        })).collect::<Vec<_>>(),
    })
}

/// One group's state of a message.
fn delivery_json(d: &Delivery) -> Value {
    let (lease_expires_at, available_at) = match d.state {
        DeliveryState::Leased => (d.until, None),
        DeliveryState::Available => (None, d.until),
        _ => (None, None),
    };
    json!({
        "group": d.group.name(),
        "group_type": match d.group { GroupRef::Consumers(_) => "consumer_group", GroupRef::Subscription(_) => "subscription" },
        "status": MessageStatus::of(d).as_str(),
        "delivery_count": d.delivery_count,
        "retry_count": d.retry_count,
        "consumer": d.consumer,
        "lease_expires_at": lease_expires_at,
        "available_at": available_at,
        "first_delivered_at": d.first_delivered_at,
        "last_delivered_at": d.last_delivered_at,
        "finished_at": d.finished_at,
        "reason": d.reason,
    })
}
