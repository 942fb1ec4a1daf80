//! `POST /api/v1/consumers` (spec 002): register a consumer.

use axum::{Extension, Json, Router, extract::State, http::StatusCode, middleware, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    JsonBody,
    fields::{identifier, parse_queue},
    require_token,
};
use crate::{
    app::AppState,
    auth::Principal,
    error::{Error, Result},
    ops::Registration,
};

/// The consumer registration route, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/consumers", post(register))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    consumer_id: String,
    group_id: String,
    topics: Vec<String>,
    max_concurrency: Option<u32>,
    rate_limit: Option<u32>,
}

async fn register(
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
