//! The storage ports: narrow traits a backend implements one by one, so a
//! deployment may mix them (the embedded SQLite file implements them all).
//!
//! - [`MessageLog`]: queues' records, partitioned (Kafka, PostgreSQL, or SQLite).
//! - [`MetadataStore`]: queues and subscriptions.
//! - [`LeaseStore`]: per-group delivery state: leases, settlements, retry schedules.
//! - [`ConsumerRegistry`] and [`RateLimiter`]: registered consumers, their activity and rate limits.
//! - [`PushLog`]: push attempts and runs of failures.
//! - [`QueueStats`]: counters of what happened to a queue's messages.
//! - [`Statistics`]: time buckets of counts and latency histograms, from every process.
//! - [`Signals`]: wake-up hints between processes sharing a store.
//!
//! Every decision that depends on time takes `now` from the caller; no backend reads a clock.
//! Every backend passes the same contract suite (`shared/tests/contract`).

mod consumers;
pub mod documents;
mod leases;
mod log;
mod meta;
mod push;
mod signals;
mod stats;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{domain::QueueName, domain::Timestamp, error::StoreError};

pub use consumers::{ConsumerRecord, ConsumerRegistry, RateLimiter};
pub use leases::{
    AcquireRequest, Acquired, Delivery, DeliveryState, DropCause, GroupPosition, GroupRef, Lease, LeaseStore,
    SettleRefusal, SettleRequest, Settlement,
};
pub use log::{LogSpec, MessageLog, ReadLimit};
pub use meta::{MetadataStore, RetryPolicy, Subscription, SubscriptionStatus};
pub use push::{AttemptRecord, FailureRun, PushLog};
pub use signals::{NoSignals, Signals};
pub use stats::{CounterDelta, NO_QUEUE, QueueCounters, QueueStats, Statistics, StatsBucket};

/// Result of a port call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A queue's numeric id: assigned once by the metadata store, never reused.
pub type QueueId = u64;

/// A queue (the `/api/v1` topic): its settings plus identity and times.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    pub id: QueueId,
    pub name: QueueName,
    pub settings: QueueSettings,
    /// The `sub` of the token that declared an exclusive queue.
    pub owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a queue's declaration sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSettings {
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: QueueArguments,
    pub partitions: u32,
    pub replication: u32,
    /// Records older than this are removed; `None` means the configured default.
    pub retention_ms: Option<u64>,
    /// Oldest records are removed while a queue holds more bytes than this.
    pub max_bytes: Option<u64>,
}

/// The RabbitMQ-style `arguments` the service understands; answered under these names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueArguments {
    #[serde(rename = "x-message-ttl", skip_serializing_if = "Option::is_none")]
    pub message_ttl_ms: Option<u64>,
    #[serde(rename = "x-max-length", skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(rename = "x-dead-letter-queue", skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<QueueName>,
    #[serde(rename = "x-delivery-limit", skip_serializing_if = "Option::is_none")]
    pub delivery_limit: Option<u32>,
}

/// A message's content: JSON text (`/message-queue`) or a plain string (`/api/v1`).
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Compact JSON text.
    Json(String),
    Text(String),
}

impl Content {
    /// The content as a JSON value: a string for text content.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
            Self::Text(s) => Value::String(s.clone()),
        }
    }

    /// The content as a string: JSON content in its compact text form.
    pub fn as_text(&self) -> &str {
        match self {
            Self::Json(s) | Self::Text(s) => s,
        }
    }
}

/// One message as appended to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Partitioning key: the explicit key, else the routing key.
    pub key: Option<String>,
    pub routing_key: Option<String>,
    pub content: Content,
    pub headers: Map<String, Value>,
    pub priority: Option<u8>,
    /// Time to live from `published_at`, in milliseconds.
    pub ttl_ms: u64,
    pub persistent: bool,
    pub published_at: Timestamp,
}

impl Record {
    pub fn expires_at(&self) -> Timestamp {
        self.published_at.plus_ms(self.ttl_ms)
    }

    /// Bytes of content, what read limits and size-based retention count.
    pub fn content_bytes(&self) -> u64 {
        self.content.as_text().len() as u64
    }
}

/// Offsets of one partition: records `start_offset..end_offset` are retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub last_published_at: Option<Timestamp>,
}

impl PartitionInfo {
    /// A partition that has never held a record.
    pub fn empty(partition: u32) -> Self {
        Self { partition, start_offset: 0, end_offset: 0, last_published_at: None }
    }

    /// Records retained from `from` on (all retained ones when `from` is below the start).
    pub fn retained_from(&self, from: u64) -> u64 {
        self.end_offset.saturating_sub(from.max(self.start_offset))
    }
}

/// What the log backend says of itself for the health endpoints.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    pub kind: &'static str,
    pub version: String,
    pub disk_bytes: Option<u64>,
}
