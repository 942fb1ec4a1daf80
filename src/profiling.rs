//! CPU profiles on a listener of their own (`PPROF_ADDR`): `GET /debug/pprof/profile?seconds=N`
//! samples every thread for N seconds (default 30, as Go's endpoint) and answers a gzipped pprof
//! protobuf, so `go tool pprof http://127.0.0.1:6067/debug/pprof/profile` works. One profile at a
//! time; the listener asks no token, so it binds loopback unless told otherwise.

use std::{io::Write, time::Duration};

use axum::{
    Json, Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use pprof::protos::Message;
use serde_json::json;

/// Samples per second: not a divisor of common timer rates, so sampling does not beat with them.
const FREQUENCY: i32 = 99;
const MAX_SECONDS: u64 = 300;

/// Serves the profiles on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener) {
    let app = Router::new().route("/debug/pprof/profile", get(profile));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("the profiling listener stopped: {e}");
    }
}

#[derive(Debug, serde::Deserialize)]
struct ProfileQuery {
    seconds: Option<String>,
}

async fn profile(query: axum::extract::Query<ProfileQuery>) -> Response {
    let seconds = match query.seconds.as_deref().map(str::parse::<u64>) {
        None => 30,
        Some(Ok(s)) if (1..=MAX_SECONDS).contains(&s) => s,
        Some(_) => {
            let issue = format!("must be a whole number of seconds from 1 to {MAX_SECONDS}");
            return refusal(StatusCode::BAD_REQUEST, "invalid_request", json!({"field": "seconds", "issue": issue}));
        }
    };
    let taken = tokio::task::spawn_blocking(move || take(Duration::from_secs(seconds))).await;
    match taken.map_err(Refused::from).and_then(|r| r) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response(),
        Err(Refused::Busy) => {
            refusal(StatusCode::CONFLICT, "conflict", json!({"reason": "a profile is being taken; one at a time"}))
        }
        Err(Refused::Failed(reason)) => {
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", json!({ "reason": reason }))
        }
    }
}

enum Refused {
    Busy,
    Failed(String),
}

impl From<tokio::task::JoinError> for Refused {
    fn from(e: tokio::task::JoinError) -> Self {
        Refused::Failed(e.to_string())
    }
}

/// Samples for `length`, then encodes the profile as gzipped protobuf.
fn take(length: Duration) -> Result<Vec<u8>, Refused> {
    let failed = |e: &dyn std::fmt::Display| Refused::Failed(e.to_string());
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => Refused::Busy,
            e => failed(&e),
        })?;
    std::thread::sleep(length);
    let report = guard.report().build().map_err(|e| failed(&e))?;
    drop(guard);
    let profile = report.pprof().map_err(|e| failed(&e))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec()).map_err(|e| failed(&e))?;
    gz.finish().map_err(|e| failed(&e))
}

fn refusal(status: StatusCode, error: &str, details: serde_json::Value) -> Response {
    let message = details["issue"].as_str().or(details["reason"].as_str()).unwrap_or(error).to_owned();
    (status, Json(json!({"error": error, "message": message, "details": details}))).into_response()
}
