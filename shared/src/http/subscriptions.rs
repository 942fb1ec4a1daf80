//! `/message-queue/subscribe` and `/message-queue/subscriptions` (spec 000): subscribe,
//! list, read, pause, resume, rotate the secret, delete.

use std::collections::BTreeMap;

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
    middleware,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    JsonBody,
    fields::parse_queue,
    params::{Path, Query},
    parse_json, require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    callback::CallbackUrl,
    domain::RoutingPattern,
    error::{Error, Result},
    ops::NewSubscription,
    ports::{RetryPolicy, Subscription},
};

/// The subscription routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/subscribe", post(subscribe))
        .route("/message-queue/subscriptions", get(list))
        .route("/message-queue/subscriptions/{subscription_id}", get(read).delete(delete))
        .route("/message-queue/subscriptions/{subscription_id}/pause", post(pause))
        .route("/message-queue/subscriptions/{subscription_id}/resume", post(resume))
        .route("/message-queue/subscriptions/{subscription_id}/secret", post(rotate_secret))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeRequest {
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

async fn subscribe(
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
fn subscription_json(sub: &Subscription) -> Value {
    json!({
        "subscription_id": sub.id,
        "queue": sub.queue,
        "routing_key": sub.routing_key,
        "callback_url": sub.callback_url.as_str(),
        "status": sub.status.as_str(),
        "paused_reason": sub.paused_reason,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    queue: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let queue = q.queue.as_deref().map(|name| parse_queue("queue", name)).transpose()?;
    let subs = state.service.list_subscriptions(&caller, queue.as_ref()).await?;
    let items: Vec<Value> = subs.iter().map(view).collect();
    Ok(Json(json!({"total": items.len(), "subscriptions": items})))
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(view(&state.service.subscription(&caller, &id).await?)))
}

async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.service.delete_subscription(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    reason: Option<String>,
}

async fn pause(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    // The body is optional: `{"reason": "..."}` or nothing.
    let request: PauseRequest =
        if body.iter().all(u8::is_ascii_whitespace) { PauseRequest::default() } else { parse_json(&body)? };
    let reason = request.reason.unwrap_or_else(|| "paused by request".into());
    Ok(Json(view(&state.service.set_paused(&caller, &id, Some(reason)).await?)))
}

async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(view(&state.service.set_paused(&caller, &id, None).await?)))
}

async fn rotate_secret(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let sub = state.service.rotate_secret(&caller, &id).await?;
    let mut body = view(&sub);
    body["secret"] = json!(sub.secret);
    Ok(Json(body))
}

/// A subscription as read back: without its headers or secret.
fn view(sub: &Subscription) -> Value {
    let mut body = subscription_json(sub);
    if let Some(map) = body.as_object_mut() {
        map.remove("secret");
        map.insert("paused_reason".into(), json!(sub.paused_reason));
        map.insert("updated_at".into(), json!(sub.updated_at));
    }
    body
}
