//! The metrics reports: `GET /message-queue/metrics` (spec 000: `queue`, `date_from`, `date_to`)
//! and `GET /api/v1/metrics` (spec 002: `topic`, `start_time`, `end_time`), in one shape, plus
//! the `performance` block queue status and health show.

use axum::{Json, Router, extract::State, middleware, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{blocks::ms, fields::parse_queue, params::Query, require_token};
use crate::{
    app::AppState,
    domain::{Count, Figures, Latency, Op, Timestamp, parse_duration_ns},
    error::{Error, Result},
    ops::{MetricsReport, QueueMetrics, Window},
};

/// The metrics routes, behind the bearer token.
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/message-queue/metrics", get(message_queue))
        .route("/api/v1/metrics", get(api_v1))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageQueueQuery {
    queue: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiV1Query {
    topic: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    interval: Option<String>,
}

async fn message_queue(State(state): State<AppState>, Query(q): Query<MessageQueueQuery>) -> Result<Json<Value>> {
    report(&state, ("queue", q.queue), ("date_from", q.date_from), ("date_to", q.date_to), q.interval).await
}

async fn api_v1(State(state): State<AppState>, Query(q): Query<ApiV1Query>) -> Result<Json<Value>> {
    report(&state, ("topic", q.topic), ("start_time", q.start_time), ("end_time", q.end_time), q.interval).await
}

type Param = (&'static str, Option<String>);

async fn report(state: &AppState, queue: Param, from: Param, to: Param, step: Option<String>) -> Result<Json<Value>> {
    let name = queue.1.as_deref().map(|n| parse_queue(queue.0, n)).transpose()?;
    let (from, to) = (instant(from, false)?, instant(to, true)?);
    let step_ms = step
        .map(|s| parse_duration_ns(&s).map(|ns| ns / 1_000_000).map_err(|e| Error::invalid("interval", e)))
        .transpose()?;
    let report =
        state.service.metrics_report(name.as_ref(), from, to, step_ms).await.map_err(|e| renamed(e, queue.0))?;
    Ok(Json(report_json(&report)))
}

/// An RFC 3339 instant, or a date (`2024-01-31`): its start, or for the end of a range its end.
fn instant((field, value): Param, end: bool) -> Result<Option<Timestamp>> {
    let Some(text) = value else { return Ok(None) };
    if let Some(t) = Timestamp::parse_rfc3339(&text) {
        return Ok(Some(t));
    }
    let midnight = Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")).ok_or_else(|| {
        Error::invalid(field, "must be an RFC 3339 time (2024-01-31T23:59:59Z) or a date (2024-01-31)")
    })?;
    Ok(Some(if end { midnight.plus_ms(86_400_000) } else { midnight }))
}

/// A missing queue is named as the caller named it (`topic` on `/api/v1`).
fn renamed(e: Error, field: &str) -> Error {
    match e {
        Error::QueueNotFound { .. } if field == "topic" => e.as_topic(),
        e => e,
    }
}

fn report_json(r: &MetricsReport) -> Value {
    let consumers: u64 = r.queues.iter().map(|q| q.status.consumer_count).sum();
    let mut out = json!({
        "overview": {
            "total_queues": r.queues.len(),
            "total_messages": r.all.figures.count(Count::Published),
            "total_consumers": consumers,
            "average_throughput": r.all.throughput_per_second(),
            "messages_in_queues": r.queues.iter().map(|q| q.status.message_count).sum::<u64>(),
        },
        "queue_metrics": r.queues.iter().map(|q| queue_json(q, r.step_ms)).collect::<Vec<_>>(),
        "performance": super::blocks::performance_json(&r.all),
        "error_rates": error_rates_json(&r.all),
        "date_from": r.all.from,
        "date_to": r.all.to,
        "generated_at": r.generated_at,
    });
    if let Some(step) = r.step_ms {
        out["series"] = series_json(&r.series, r.all.from, step);
    }
    out
}

fn queue_json(q: &QueueMetrics, step_ms: Option<u64>) -> Value {
    let f = &q.window.figures;
    let mut out = json!({
        "queue": q.status.queue.name,
        "message_count": q.status.message_count,
        "consumer_count": q.status.consumer_count,
        "messages_published": f.count(Count::Published),
        "messages_consumed": f.count(Count::Consumed),
        "messages_acknowledged": f.count(Count::Acknowledged),
        "messages_rejected": f.count(Count::Rejected),
        "messages_redelivered": f.count(Count::Redelivered),
        "messages_requeued": f.count(Count::Requeued),
        "messages_dead_lettered": f.count(Count::DeadLettered),
        "messages_expired": f.count(Count::Expired),
        "push_attempts": f.count(Count::PushAttempts),
        "push_failures": f.count(Count::PushFailures),
        "average_publish_time": ms(f.distribution(Latency::Publish).mean_ms),
        "average_consume_time": ms(f.distribution(Latency::Consume).mean_ms),
        "throughput_per_second": q.window.throughput_per_second(),
        "oldest_unacknowledged_age_seconds": q.status.oldest_unfinished_seconds(),
        "groups": super::blocks::groups_json(&q.status),
    });
    out["performance"] = super::blocks::performance_json(&q.window);
    if let Some(step) = step_ms {
        out["series"] = series_json(&q.series, q.window.from, step);
    }
    out
}

/// The range step by step: each step's start, counts and the percentiles a chart shows.
fn series_json(steps: &[Figures], from: Timestamp, step_ms: u64) -> Value {
    let point = |(i, f): (usize, &Figures)| {
        let mut p = json!({"from": Timestamp(from.0 + (i as u64 * step_ms) as i64)});
        for count in [Count::Published, Count::Consumed, Count::Acknowledged, Count::Rejected, Count::DeadLettered] {
            p[count.name()] = f.count(count).into();
        }
        for count in [Count::Expired, Count::Requeued, Count::PushAttempts, Count::PushFailures] {
            p[count.name()] = f.count(count).into();
        }
        p["p95_publish_time"] = ms(f.distribution(Latency::Publish).p95_ms).into();
        p["p95_end_to_end_time"] = ms(f.distribution(Latency::EndToEnd).p95_ms).into();
        p
    };
    json!({"interval_seconds": step_ms as f64 / 1000.0, "points": steps.iter().enumerate().map(point).collect::<Vec<_>>()})
}

/// Spec 000's `<op>_errors` shares, and the calls and errors they come from, by class.
fn error_rates_json(w: &Window) -> Value {
    let mut out = serde_json::Map::new();
    for op in Op::ALL {
        out.insert(format!("{}_errors", op.name()), w.op_error_rate(op).into());
    }
    out.insert("errors".into(), errors_json(w));
    Value::Object(out)
}

/// Calls and errors of each counted operation, by class.
fn errors_json(w: &Window) -> Value {
    let f = &w.figures;
    let by_op = Op::ALL.iter().map(|op| {
        let [calls, client, server] = op.counts();
        let counts =
            json!({"calls": f.count(calls), "client_errors": f.count(client), "server_errors": f.count(server)});
        (op.name().to_owned(), counts)
    });
    Value::Object(by_op.collect())
}
