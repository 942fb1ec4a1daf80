//! `GET /health` (spec 002) and `GET /message-queue/health` (spec 000).

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    app::AppState,
    domain::format_duration_ms,
    ops::{BackendCheck, HealthReport},
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One backend's check as both endpoints show it.
fn check(c: &BackendCheck) -> Value {
    json!({
        "status": if c.up() { "up" } else { "down" },
        "type": c.info().map(|b| b.kind),
        "version": c.info().map(|b| b.version.clone()),
        "latency": format_duration_ms(c.latency.as_secs_f64() * 1000.0),
        "error": c.error(),
    })
}

/// The health routes; they take no token.
pub fn routes(_: &AppState) -> Router<AppState> {
    Router::new()
        .route("/health", get(v1))
        .route("/health/live", get(live))
        .route("/message-queue/health", get(message_queue))
}

/// Liveness: the process answers; no backend is asked, so it stays cheap under any load.
async fn live() -> Json<Value> {
    Json(json!({"status": "alive", "version": VERSION}))
}

async fn v1(State(state): State<AppState>) -> Response {
    let h = state.service.health().await;
    let body = json!({
        "status": status_word(&h),
        "version": VERSION,
        "uptime_seconds": h.uptime.as_secs(),
        "timestamp": h.checked_at,
        "checks": {
            "storage": check(&h.log),
            "metadata": check(&h.metadata),
            "push": {
                "status": if h.failing_subscriptions.is_empty() { "up" } else { "degraded" },
                "failing_subscriptions": h.failing_subscriptions,
            },
        }
    });
    answer(&h, body)
}

async fn message_queue(State(state): State<AppState>) -> Response {
    let h = state.service.health().await;
    let body = json!({
        "status": status_word(&h),
        "version": VERSION,
        "uptime": format_uptime(h.uptime.as_secs()),
        "broker": {
            "status": if h.log.up() { "connected" } else { "disconnected" },
            "type": h.log.info().map(|b| b.kind),
            "version": h.log.info().map(|b| b.version.clone()),
            "memory_usage": resident_memory().map(format_bytes),
            // A log that cannot say (Kafka: librdkafka has no DescribeLogDirs) answers "unknown".
            "disk_usage": h.log.info().map(|b| b.disk_bytes.map_or_else(|| "unknown".to_owned(), format_bytes)),
            "latency": format_duration_ms(h.log.latency.as_secs_f64() * 1000.0),
            "error": h.log.error(),
        },
        "database": check(&h.metadata),
        "queues": {"total": h.queues.total, "active": h.queues.active, "inactive": h.queues.total - h.queues.active},
        "consumers": {
            "total": h.consumers.total,
            "active": h.consumers.active,
            "inactive": h.consumers.total - h.consumers.active,
        },
        "performance": super::blocks::performance_json(&h.performance),
        "last_updated": h.checked_at,
    });
    answer(&h, body)
}

/// `unhealthy` (a backend is down: 503), `degraded` (push delivery failing somewhere: 200), or `healthy`.
fn status_word(h: &HealthReport) -> &'static str {
    match (h.healthy(), h.degraded()) {
        (false, _) => "unhealthy",
        (true, true) => "degraded",
        (true, false) => "healthy",
    }
}

/// 200, or 503 with `Retry-After` while a backend is down.
fn answer(h: &HealthReport, body: Value) -> Response {
    if h.healthy() {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, RETRY_AFTER_SECS)], Json(body)).into_response()
    }
}

/// What an unhealthy answer asks a client to wait, in seconds.
const RETRY_AFTER_SECS: &str = "5";

/// `3d4h5m6s`, leaving out leading zero units.
fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m{s}s"),
        _ => format!("{d}d{h}h{m}m{s}s"),
    }
}

fn format_bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n}B"),
        1024..1_048_576 => format!("{}KB", n / 1024),
        1_048_576..1_073_741_824 => format!("{}MB", n / 1_048_576),
        _ => format!("{:.1}GB", n as f64 / 1_073_741_824.0),
    }
}

/// This process's resident memory, where the OS tells it (`/proc/self/status`).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}
