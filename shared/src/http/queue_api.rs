//! `/message-queue` publish, subscribe and message lookup (spec 000).

use std::collections::BTreeMap;

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{JsonBody, params::Path};
use crate::{
    app::AppState,
    auth::Principal,
    callback::CallbackUrl,
    domain::{QueueName, RoutingKey, RoutingPattern},
    error::{Error, Result},
    ops::{MessageStatus, MessageView, NewSubscription, Publish},
    ports::{Content, Delivery, DeliveryState, GroupRef, RetryPolicy, Subscription},
};

/// Longest TTL a message may ask for: one year, in seconds.
const MAX_TTL_SECS: u64 = 365 * 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishRequest {
    queue: String,
    #[serde(default)]
    message: Option<Value>,
    routing_key: Option<String>,
    headers: Option<Map<String, Value>>,
    ttl: Option<u64>,
    persistent: Option<bool>,
}

pub(super) async fn publish(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<PublishRequest>,
) -> Result<Json<Value>> {
    let cmd = Publish {
        queue: parse_queue("queue", &req.queue)?,
        key: None,
        routing_key: req
            .routing_key
            .map(|k| RoutingKey::parse(&k).map_err(|e| Error::invalid("routing_key", e)))
            .transpose()?
            .map(String::from),
        content: Content::Json(json_content(req.message)?),
        headers: req.headers.unwrap_or_default(),
        priority: None,
        ttl_ms: req.ttl.map(ttl_seconds).transpose()?,
        persistent: req.persistent.unwrap_or(true),
    };
    let done = state.service.publish(&caller, cmd).await?;
    Ok(Json(json!({
        "message_id": done.id.to_string(),
        "queue": done.queue.name,
        "routing_key": done.record.routing_key,
        "published": true,
        "published_at": done.record.published_at,
        "ttl": done.record.ttl_ms.div_ceil(1000),
        "persistent": done.record.persistent,
        "partition": done.id.partition,
        "offset": done.id.offset,
    })))
}

/// Spec 000's `message`: any JSON value but null or an empty string, object or array.
fn json_content(message: Option<Value>) -> Result<String> {
    let required = || Error::invalid_message("message", "Message content is required");
    let message = message.ok_or_else(required)?;
    let empty = match &message {
        Value::String(s) => s.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        return Err(Error::invalid_message("message", "Message content must not be empty"));
    }
    Ok(message.to_string())
}

fn ttl_seconds(ttl: u64) -> Result<u64> {
    if !(1..=MAX_TTL_SECS).contains(&ttl) {
        return Err(Error::invalid("ttl", format!("must be 1 to {MAX_TTL_SECS} seconds")));
    }
    Ok(ttl * 1000)
}

pub(super) fn parse_queue(field: &str, name: &str) -> Result<QueueName> {
    QueueName::parse(name).map_err(|e| Error::invalid(field, e))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SubscribeRequest {
    queue: String,
    routing_key: Option<String>,
    callback_url: String,
    headers: Option<BTreeMap<String, String>>,
    retry_policy: Option<RetryPolicyRequest>,
    dead_letter_queue: Option<String>,
    prefetch_count: Option<u32>,
    match_headers: Option<Map<String, Value>>,
    ordered: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryPolicyRequest {
    max_retries: Option<u32>,
    retry_delay: Option<u64>,
    backoff_multiplier: Option<f64>,
}

pub(super) async fn subscribe(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    JsonBody(req): JsonBody<SubscribeRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let new = NewSubscription {
        queue: parse_queue("queue", &req.queue)?,
        routing_key: match &req.routing_key {
            Some(p) => RoutingPattern::parse(p).map_err(|e| Error::invalid("routing_key", e))?,
            None => RoutingPattern::all(),
        },
        callback_url: CallbackUrl::parse(&req.callback_url).map_err(|e| Error::invalid("callback_url", e))?,
        headers: callback_headers(req.headers.unwrap_or_default())?,
        retry_policy: retry_policy(req.retry_policy.unwrap_or_default())?,
        dead_letter_queue: req.dead_letter_queue.map(|q| parse_queue("dead_letter_queue", &q)).transpose()?,
        match_headers: req
            .match_headers
            .map(|filter| crate::routing::HeaderMatch::parse(&filter).map_err(|e| Error::invalid("match_headers", e)))
            .transpose()?,
        ordered: req.ordered.unwrap_or(false),
        prefetch_count: match req.prefetch_count.unwrap_or(10) {
            n @ 1..=1000 => n,
            _ => return Err(Error::invalid("prefetch_count", "must be 1 to 1000")),
        },
    };
    let sub = state.service.subscribe(&caller, new).await?;
    Ok((StatusCode::CREATED, Json(subscription_json(&sub))))
}

fn callback_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if headers.len() > 50 {
        return Err(Error::invalid("headers", "at most 50 headers"));
    }
    for (name, value) in &headers {
        let field = format!("headers.{name}");
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::invalid(&field, "is not a valid header name"))?;
        HeaderValue::from_str(value).map_err(|_| Error::invalid(&field, "is not a valid header value"))?;
    }
    Ok(headers)
}

fn retry_policy(req: RetryPolicyRequest) -> Result<RetryPolicy> {
    let policy = RetryPolicy {
        max_retries: req.max_retries.unwrap_or(3),
        retry_delay: req.retry_delay.unwrap_or(1000),
        backoff_multiplier: req.backoff_multiplier.unwrap_or(2.0),
    };
    if policy.max_retries > 100 {
        return Err(Error::invalid("retry_policy.max_retries", "must be 0 to 100"));
    }
    if policy.retry_delay > 86_400_000 {
        return Err(Error::invalid("retry_policy.retry_delay", "must be 0 to 86400000 milliseconds"));
    }
    if !(1.0..=10.0).contains(&policy.backoff_multiplier) {
        return Err(Error::invalid("retry_policy.backoff_multiplier", "must be 1 to 10"));
    }
    Ok(policy)
}

/// A new subscription as answered, with its signing secret (shown this once); its headers
/// are not echoed, as they often hold credentials.
pub(super) fn subscription_json(sub: &Subscription) -> Value {
    json!({
        "subscription_id": sub.id,
        "queue": sub.queue,
        "routing_key": sub.routing_key,
        "callback_url": sub.callback_url.as_str(),
        "status": sub.status.as_str(),
        "created_at": sub.created_at,
        "retry_policy": {
            "max_retries": sub.retry_policy.max_retries,
            "retry_delay": sub.retry_policy.retry_delay,
            "backoff_multiplier": sub.retry_policy.backoff_multiplier,
        },
        "dead_letter_queue": sub.dead_letter_queue,
        "prefetch_count": sub.prefetch_count,
        "ordered": sub.ordered,
        "match_headers": sub.match_headers.as_ref().map(|m| m.filter()),
        "secret": sub.secret,
    })
}

pub(super) async fn message(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(message_id): Path<String>,
) -> Result<Json<Value>> {
    let view = state.service.message(&caller, &message_id).await?;
    Ok(Json(message_json(&view)))
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
