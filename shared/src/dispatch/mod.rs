//! Push delivery: one HTTP POST per message to a subscription's callback,
//! signed per Standard Webhooks, through a client whose name resolution checks
//! every address against the callback policy and connects only to those.

pub mod signature;

use std::{sync::Arc, time::Duration};

use crate::{
    callback::{AddressPolicy, literal_address, resolve_checked},
    domain::{MessageId, Timestamp},
    ops::CallbackUrl,
    ports::{Content, Record, Subscription},
};

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

/// The HTTP client for callbacks: no redirects, a timeout, and checked name resolution.
pub fn client(policy: AddressPolicy, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .timeout(timeout)
        .dns_resolver(Arc::new(CheckedResolver { policy }))
        .build()
        .expect("the callback client builds")
}

#[derive(Debug)]
struct CheckedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs = resolve_checked(&policy, name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// POSTs one message to a subscription's callback.
pub async fn deliver(
    client: &reqwest::Client,
    policy: &AddressPolicy,
    sub: &Subscription,
    id: MessageId,
    record: &Record,
    attempt: u32,
) -> Attempt {
    let started = std::time::Instant::now();
    let refused =
        |error: String| Attempt { status: None, latency: started.elapsed(), error: Some(error), retry_after: None };
    let url = match CallbackUrl::parse(&sub.callback_url) {
        Ok(url) => url,
        Err(e) => return refused(format!("callback_url {e}")),
    };
    // Names are checked by the client's resolver; literal addresses never reach it.
    let (host, _) = url.host_and_port();
    match literal_address(&host) {
        Ok(Some(ip)) => {
            if let Err(e) = policy.check_ip(ip) {
                return refused(e);
            }
        }
        Ok(None) => {}
        Err(e) => return refused(e),
    }
    let body = record.content.as_text().to_owned();
    let id_text = id.to_string();
    let timestamp = Timestamp::now().0 / 1000;
    let content_type = match record.content {
        Content::Json(_) => "application/json",
        Content::Text(_) => "text/plain; charset=utf-8",
    };
    let mut request = client
        .post(url.as_str())
        .header("content-type", content_type)
        .header("webhook-id", &id_text)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature::sign(&sub.secret, &id_text, timestamp, body.as_bytes()))
        .header("x-message-id", &id_text)
        .header("x-queue", sub.queue.as_str())
        .header("x-subscription-id", &sub.id)
        .header("x-delivery-attempt", attempt.to_string())
        .header("x-published-at", record.published_at.to_rfc3339());
    if let Some(key) = &record.routing_key {
        request = request.header("x-routing-key", key);
    }
    if !record.headers.is_empty() {
        request = request.header("x-message-headers", serde_json::Value::Object(record.headers.clone()).to_string());
    }
    for (name, value) in &sub.headers {
        request = request.header(name, value);
    }
    match request.body(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = matches!(status, 429 | 503)
                .then(|| resp.headers().get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok())
                .flatten()
                .map(Duration::from_secs);
            Attempt { status: Some(status), latency: started.elapsed(), error: None, retry_after }
        }
        Err(e) => {
            let error = if e.is_timeout() { "timed out".to_owned() } else { without_url(&e) };
            refused(error)
        }
    }
}

/// A transport error's text, without the URL (which may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
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
mod tests {
    use super::*;

    #[test]
    fn backoff_multiplies_from_the_first_delay() {
        assert_eq!(backoff(1000, 2.0, 1, 0.0), Duration::from_millis(1000));
        assert_eq!(backoff(1000, 2.0, 2, 0.0), Duration::from_millis(2000));
        assert_eq!(backoff(1000, 2.0, 3, 0.0), Duration::from_millis(4000));
        assert_eq!(backoff(1000, 2.0, 3, 1.0), Duration::from_millis(4400));
        assert_eq!(backoff(0, 2.0, 5, 0.5), Duration::ZERO);
    }
}
