//! Publishing: `POST /message-queue/publish` (spec 000), `POST /api/v1/messages`
//! and `POST /api/v1/messages/batch` (spec 002).

use std::collections::BTreeMap;

use axum::{Extension, Json, Router, extract::State, http::StatusCode, middleware, routing::post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    JsonBody,
    extract::parse_value,
    fields::{duration_ms, nanos, parse_queue},
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    domain::{DurationInput, RoutingKey},
    error::{Error, Result},
    ops::{Publish, Published},
    ports::Content,
};

/// The publishing routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/publish", post(publish))
        .route("/api/v1/messages", post(produce))
        .route("/api/v1/messages/batch", post(produce_batch))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

/// Longest TTL a message may ask for: one year, in seconds.
const MAX_TTL_SECS: u64 = 365 * 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    queue: String,
    #[serde(default)]
    message: Option<Value>,
    routing_key: Option<String>,
    headers: Option<Map<String, Value>>,
    ttl: Option<u64>,
    persistent: Option<bool>,
}

async fn publish(
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

/// Longest partitioning key, in bytes.
const MAX_KEY: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceRequest {
    topic: String,
    key: Option<String>,
    content: String,
    headers: Option<BTreeMap<String, String>>,
    priority: Option<u8>,
    ttl: Option<DurationInput>,
}

async fn produce(
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
struct BatchRequest {
    messages: Vec<Value>,
}

/// `POST /api/v1/messages/batch`: each message is checked and answered on its own.
async fn produce_batch(
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
