//! Appends: one long-lived idempotent producer (`acks=all`, LZ4, a short linger so concurrent
//! publishes share batches, bounded memory); each record is answered from its delivery report.
//! A record's fields travel as headers (`mq-*`), its key as the Kafka key, its content as the
//! value, its publish time as the record's timestamp.

use futures_util::future::join_all;
use rdkafka::{
    error::KafkaError,
    message::{Header, Headers, Message, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

use super::{KafkaOptions, failed};
use crate::{
    domain::Timestamp,
    ports::{Content, Record, StoreResult},
};

const ROUTING_KEY: &str = "mq-routing-key";
const CONTENT_TYPE: &str = "mq-content-type";
const PRIORITY: &str = "mq-priority";
const TTL_MS: &str = "mq-ttl-ms";
const PERSISTENT: &str = "mq-persistent";
const PUBLISHED_AT: &str = "mq-published-at";
const HEADERS: &str = "mq-headers";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

pub(super) fn producer(options: &KafkaOptions) -> StoreResult<FutureProducer> {
    let timeout = options.timeout.as_millis().to_string();
    options
        .client(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "lz4"),
            ("linger.ms", "2"),
            ("queue.buffering.max.kbytes", "16384"),
            ("message.timeout.ms", &timeout),
        ])
        .create()
        .map_err(|e| failed("cannot make the producer", &e))
}

/// Sends each record to its partition; answers each one's offset (from the broker's delivery
/// report) or the client's error.
pub(super) async fn send(
    producer: &FutureProducer,
    options: &KafkaOptions,
    topic: &str,
    records: &[(u32, Record)],
) -> Vec<Result<u64, KafkaError>> {
    let sends = records.iter().map(|(partition, record)| {
        let headers = headers(record);
        let mut out = FutureRecord::to(topic)
            .partition(*partition as i32)
            .payload(record.content.as_text())
            .headers(headers)
            .timestamp(record.published_at.0);
        if let Some(key) = &record.key {
            out = out.key(key.as_str());
        }
        producer.send(out, options.timeout)
    });
    join_all(sends).await.into_iter().map(|r| r.map(|d| d.offset as u64).map_err(|(e, _)| e)).collect()
}

/// Whether the producer's idempotence state no longer matches the broker's, so that only a new
/// producer (a new producer id) can send: a topic deleted and made again under its name still
/// has this producer's old sequence numbers here, and none there; or the producer failed fatally.
pub(super) fn stale(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::OutOfOrderSequenceNumber | C::UnknownProducerId | C::InvalidProducerEpoch | C::Fatal)
    )
}

/// A record's fields as the headers it travels with.
pub fn headers(record: &Record) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(7);
    let mut put = |key: &str, value: &str| {
        h = std::mem::take(&mut h).insert(Header { key, value: Some(value) });
    };
    if let Some(routing_key) = &record.routing_key {
        put(ROUTING_KEY, routing_key);
    }
    put(CONTENT_TYPE, if matches!(record.content, Content::Json(_)) { JSON } else { TEXT });
    if let Some(priority) = record.priority {
        put(PRIORITY, &priority.to_string());
    }
    put(TTL_MS, &record.ttl_ms.to_string());
    put(PERSISTENT, if record.persistent { "true" } else { "false" });
    put(PUBLISHED_AT, &record.published_at.0.to_string());
    if !record.headers.is_empty() {
        put(HEADERS, &serde_json::Value::Object(record.headers.clone()).to_string());
    }
    h
}

/// A record read back. One written outside the service has none of the `mq-*` headers: its
/// content is text, it never expires, and its publish time is the record's timestamp.
pub(super) fn record_of<M: Message>(m: &M) -> Record {
    let mut fields: [Option<&str>; 7] = [None; 7];
    let names = [ROUTING_KEY, CONTENT_TYPE, PRIORITY, TTL_MS, PERSISTENT, PUBLISHED_AT, HEADERS];
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            if let (Some(i), Some(v)) = (names.iter().position(|n| *n == h.key), h.value) {
                fields[i] = std::str::from_utf8(v).ok();
            }
        }
    }
    let [routing_key, content_type, priority, ttl_ms, persistent, published_at, user] = fields;
    let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
    let published_at =
        published_at.and_then(|v| v.parse().ok()).or(m.timestamp().to_millis()).map_or(Timestamp(0), Timestamp);
    Record {
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        routing_key: routing_key.map(str::to_owned),
        content: if content_type == Some(JSON) { Content::Json(text) } else { Content::Text(text) },
        headers: user.and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default(),
        priority: priority.and_then(|v| v.parse().ok()),
        ttl_ms: ttl_ms.and_then(|v| v.parse().ok()).unwrap_or(u64::MAX),
        persistent: persistent != Some("false"),
        published_at,
    }
}
