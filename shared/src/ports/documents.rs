//! How backends store documents: a subscription as one JSON document, in the
//! shape the service has always written (files of earlier versions read back),
//! a queue's settings as JSON text, and a record's content and headers as columns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    callback::CallbackUrl,
    domain::{QueueName, RoutingPattern, Timestamp},
    error::StoreError,
    ports::{Content, QueueId, Record, RetryPolicy, StoreResult, Subscription, SubscriptionStatus},
    routing::HeaderMatch,
};

/// A value as JSON text.
pub fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Failed(format!("cannot encode: {e}")))
}

/// A value back from stored JSON text.
pub fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Failed(format!("stored document is unreadable: {e}")))
}

/// A record's content and headers as a row keeps them: whether the content is JSON, its text,
/// and the headers as a JSON object (`{}` when there are none).
pub fn record_columns(record: &Record) -> StoreResult<(bool, &str, String)> {
    let (is_json, content) = match &record.content {
        Content::Json(s) => (true, s.as_str()),
        Content::Text(s) => (false, s.as_str()),
    };
    let headers = if record.headers.is_empty() { "{}".to_owned() } else { to_json(&record.headers)? };
    Ok((is_json, content, headers))
}

/// A subscription back from its stored document.
pub fn subscription_from(body: &str) -> StoreResult<Subscription> {
    from_json::<StoredSubscription>(body)?.try_into().map_err(StoreError::Failed)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSubscription {
    id: String,
    queue_id: QueueId,
    queue: QueueName,
    routing_key: RoutingPattern,
    callback_url: String,
    headers: BTreeMap<String, String>,
    retry_policy: StoredRetryPolicy,
    dead_letter_queue: Option<QueueName>,
    prefetch_count: u32,
    #[serde(default)]
    match_headers: Option<Map<String, Value>>,
    /// Absent in documents written before delivery order was a choice: those were ordered.
    #[serde(default)]
    ordered: Option<bool>,
    #[serde(default)]
    paused_reason: Option<String>,
    #[serde(default)]
    secret: String,
    status: String,
    owner: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredRetryPolicy {
    max_retries: u32,
    retry_delay: u64,
    backoff_multiplier: f64,
}

impl From<&Subscription> for StoredSubscription {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id.clone(),
            queue_id: s.queue_id,
            queue: s.queue.clone(),
            routing_key: s.routing_key.clone(),
            callback_url: s.callback_url.as_str().to_owned(),
            headers: s.headers.clone(),
            retry_policy: StoredRetryPolicy {
                max_retries: s.retry_policy.max_retries,
                retry_delay: s.retry_policy.retry_delay,
                backoff_multiplier: s.retry_policy.backoff_multiplier,
            },
            dead_letter_queue: s.dead_letter_queue.clone(),
            prefetch_count: s.prefetch_count,
            match_headers: s.match_headers.as_ref().map(|m| m.filter().clone()),
            ordered: Some(s.ordered),
            paused_reason: s.paused_reason.clone(),
            secret: s.secret.clone(),
            status: s.status.as_str().to_owned(),
            owner: s.owner.clone(),
            created_at: s.created_at.0,
            updated_at: s.updated_at.0,
        }
    }
}

impl TryFrom<StoredSubscription> for Subscription {
    type Error = String;

    fn try_from(s: StoredSubscription) -> Result<Self, String> {
        let unreadable = |what: &str, e: String| format!("subscription {}: stored {what} is unreadable: {e}", s.id);
        Ok(Self {
            callback_url: CallbackUrl::parse(&s.callback_url).map_err(|e| unreadable("callback_url", e))?,
            match_headers: s
                .match_headers
                .as_ref()
                .map(HeaderMatch::parse)
                .transpose()
                .map_err(|e| unreadable("match_headers", e))?,
            status: SubscriptionStatus::parse(&s.status)
                .ok_or_else(|| unreadable("status", format!("{:?}", s.status)))?,
            id: s.id,
            queue_id: s.queue_id,
            queue: s.queue,
            routing_key: s.routing_key,
            headers: s.headers,
            retry_policy: RetryPolicy {
                max_retries: s.retry_policy.max_retries,
                retry_delay: s.retry_policy.retry_delay,
                backoff_multiplier: s.retry_policy.backoff_multiplier,
            },
            dead_letter_queue: s.dead_letter_queue,
            prefetch_count: s.prefetch_count,
            ordered: s.ordered.unwrap_or(true),
            paused_reason: s.paused_reason,
            secret: s.secret,
            owner: s.owner,
            created_at: Timestamp(s.created_at),
            updated_at: Timestamp(s.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_written_before_ordering_was_a_choice_reads_as_ordered() {
        let old = r##"{"id":"sub_1","queue_id":3,"queue":"q","routing_key":"#","callback_url":"https://example.com/h",
            "headers":{},"retry_policy":{"max_retries":3,"retry_delay":1000,"backoff_multiplier":2.0},
            "dead_letter_queue":null,"prefetch_count":10,"match_headers":null,"paused_reason":null,
            "secret":"whsec_x","status":"active","owner":"a","created_at":1,"updated_at":2}"##;
        let sub = Subscription::try_from(serde_json::from_str::<StoredSubscription>(old).unwrap()).unwrap();
        assert!(sub.ordered);
        assert_eq!(
            (sub.created_at, sub.updated_at, sub.status),
            (Timestamp(1), Timestamp(2), SubscriptionStatus::Active)
        );
        let again = Subscription::try_from(
            serde_json::from_str::<StoredSubscription>(
                &serde_json::to_string(&StoredSubscription::from(&Subscription { ordered: false, ..sub.clone() }))
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!again.ordered, "written since: as chosen");
    }
}
