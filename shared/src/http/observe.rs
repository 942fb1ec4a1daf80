//! What every request goes through first: a request id (the client's `X-Request-Id` when it
//! sends a usable one, else a new one), answered back in the same header; a span carrying it,
//! so every log line of the request names it; and the request counted.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

pub(super) const REQUEST_ID: &str = "x-request-id";
/// Longest client request id kept; a longer one is replaced.
const MAX_ID: usize = 128;

pub(super) async fn observe(req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = req.uri().path());
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    crate::telemetry::answered(status.as_u16(), started.elapsed());
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::debug!(status = status.as_u16(), micros, "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The client's id when it is 1 to 128 characters of letters, digits and `-_.:`; else a new one.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|id| {
        !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    });
    given.map_or_else(new_id, str::to_owned)
}

/// A random prefix per process and a counter: unique across processes without a syscall per request.
fn new_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0; 4];
        let _ = getrandom::fill(&mut bytes);
        u32::from_le_bytes(bytes)
    });
    format!("{prefix:08x}{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_str(id).unwrap());
        headers
    }

    #[test]
    fn a_usable_client_id_is_kept_and_any_other_replaced() {
        assert_eq!(request_id(&with("order-42:retry.1_a")), "order-42:retry.1_a");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let id = request_id(&with(bad));
            assert_eq!(id.len(), 20, "{bad:?} gave {id}");
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()), "new ids differ");
    }
}
