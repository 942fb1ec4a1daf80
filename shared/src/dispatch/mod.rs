//! Push delivery: one HTTP POST per message to a subscription's callback,
//! signed per Standard Webhooks, through a client whose connector applies the
//! callback policy to every address it opens a socket to.

pub mod connect;
pub mod signature;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::{
    callback::{AddressPolicy, Resolve},
    domain::{MessageId, Timestamp},
    ports::{Content, Record, Subscription},
};
use connect::CheckedConnector;

/// What one delivery attempt saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    /// When the receiver asked for a pause (`Retry-After` on 429 or 503).
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// 2xx within the timeout; 3xx, 4xx, 5xx, timeouts and connection errors are failures.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The HTTP client for callbacks: HTTP/1.1 over the checked connector (TLS for
/// `https`), a timeout per attempt, redirects never followed, no proxy.
#[derive(Debug, Clone)]
pub struct Callbacks {
    client: Client<HttpsConnector<CheckedConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Callbacks {
    pub fn new(policy: AddressPolicy, resolver: Arc<dyn Resolve>, timeout: Duration) -> Self {
        // ring by name: a build that also links aws-lc-rs (the AWS SDK's) has no default provider.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring's provider offers the default TLS versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(CheckedConnector::new(policy, resolver));
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        Self { client, timeout }
    }

    /// POSTs one message to a subscription's callback, signed as sent at `now`.
    pub async fn deliver(
        &self,
        sub: &Subscription,
        id: MessageId,
        record: &Record,
        attempt: u32,
        now: Timestamp,
    ) -> Attempt {
        let started = std::time::Instant::now();
        let failed =
            |error: String| Attempt { status: None, latency: started.elapsed(), error: Some(error), retry_after: None };
        let request = match request(sub, id, record, attempt, now) {
            Ok(request) => request,
            Err(e) => return failed(e),
        };
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let retry_after = matches!(status, 429 | 503)
                    .then(|| resp.headers().get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok())
                    .flatten()
                    .map(Duration::from_secs);
                Attempt { status: Some(status), latency: started.elapsed(), error: None, retry_after }
            }
            Ok(Err(e)) => failed(innermost(&e)),
            Err(_) => failed("timed out".to_owned()),
        }
    }
}

/// The signed request of one delivery attempt.
fn request(
    sub: &Subscription,
    id: MessageId,
    record: &Record,
    attempt: u32,
    now: Timestamp,
) -> Result<Request<Full<Bytes>>, String> {
    let body = record.content.as_text().to_owned();
    let id_text = id.to_string();
    let timestamp = now.0 / 1000;
    let content_type = match record.content {
        Content::Json(_) => "application/json",
        Content::Text(_) => "text/plain; charset=utf-8",
    };
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), content_type.into()),
        ("webhook-id".into(), id_text.clone()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signature::sign(&sub.secret, &id_text, timestamp, body.as_bytes())),
        ("x-message-id".into(), id_text.clone()),
        ("x-queue".into(), sub.queue.to_string()),
        ("x-subscription-id".into(), sub.id.clone()),
        ("x-delivery-attempt".into(), attempt.to_string()),
        ("x-published-at".into(), record.published_at.to_rfc3339()),
    ];
    if let Some(key) = &record.routing_key {
        headers.push(("x-routing-key".into(), key.clone()));
    }
    if !record.headers.is_empty() {
        headers.push(("x-message-headers".into(), serde_json::Value::Object(record.headers.clone()).to_string()));
    }
    headers.extend(sub.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut builder =
        Request::builder().method(Method::POST).uri(sub.callback_url.as_str()).header("user-agent", USER_AGENT);
    for (name, value) in headers {
        let name = HeaderName::try_from(name).map_err(|e| format!("header name: {e}"))?;
        let value = HeaderValue::try_from(value).map_err(|e| format!("header {name}: {e}"))?;
        builder = builder.header(name, value);
    }
    builder.body(Full::new(Bytes::from(body))).map_err(|e| format!("callback request: {e}"))
}

const USER_AGENT: &str = concat!("message-queue/", env!("CARGO_PKG_VERSION"));

/// The innermost cause of a transport error: the URL (which may carry a token) is never in it.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = String::from("connection failed");
    while let Some(err) = source {
        last = err.to_string();
        source = err.source();
    }
    last
}

/// Delay before retry `n` (1-based): `retry_delay` ms times `multiplier^(n-1)`, with up to 10% jitter.
pub fn backoff(retry_delay_ms: u64, multiplier: f64, retry: u32, jitter: f64) -> Duration {
    let base = retry_delay_ms as f64 * multiplier.powi(retry.saturating_sub(1) as i32);
    let capped = base.min(24.0 * 3600.0 * 1000.0);
    Duration::from_millis((capped * (1.0 + 0.1 * jitter.clamp(0.0, 1.0))) as u64)
}

#[cfg(test)]
mod tests;
