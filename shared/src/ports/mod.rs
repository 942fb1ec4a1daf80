//! The storage ports. The message log holds records (Kafka, or the embedded
//! SQLite file); the metadata store holds queues and subscriptions (PostgreSQL,
//! DynamoDB, or the same SQLite file). Every backend passes the same contract tests.

mod delivery;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    domain::{MessageId, QueueName, RoutingPattern, Timestamp},
    error::StoreError,
};

pub use delivery::{
    AcquireRequest, AttemptRecord, ConsumerRecord, Delivery, DeliveryState, DeliveryStore, DropCause, FailureRun,
    GroupPosition, GroupRef, Lease, QueueCounters, SettleRefusal, SettleRequest, Settlement,
};

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
}

/// Offsets of one partition: records `start_offset..end_offset` are retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub start_offset: u64,
    pub end_offset: u64,
    pub last_published_at: Option<Timestamp>,
}

/// What the log backend says of itself for the health endpoints.
#[derive(Debug, Clone)]
pub struct BackendInfo {
    pub kind: &'static str,
    pub version: String,
    pub disk_bytes: Option<u64>,
}

/// A push subscription: a delivery group of its own that POSTs matching messages to a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub queue_id: QueueId,
    pub queue: QueueName,
    pub routing_key: RoutingPattern,
    pub callback_url: String,
    pub headers: BTreeMap<String, String>,
    pub retry_policy: RetryPolicy,
    pub dead_letter_queue: Option<QueueName>,
    pub prefetch_count: u32,
    /// Headers routing: `{"x-match": "all"|"any", name: value, ...}` the message's headers must match.
    #[serde(default)]
    pub match_headers: Option<Map<String, Value>>,
    /// Why the subscription is paused, when it is.
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// The Standard Webhooks signing secret (`whsec_...`), answered once at creation.
    #[serde(default)]
    pub secret: String,
    pub status: String,
    pub owner: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Spec 000's retry policy: `retry_delay` ms, times `backoff_multiplier` per attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub retry_delay: u64,
    pub backoff_multiplier: f64,
}

/// The append-only log of records, partitioned per queue.
#[async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Appends one record and returns its offset once it is durable.
    /// `NotFound` when the queue no longer exists.
    async fn append(&self, queue: QueueId, partition: u32, record: Record) -> StoreResult<u64> {
        let offsets = self.append_many(queue, vec![(partition, record)]).await?;
        offsets.first().copied().ok_or_else(|| StoreError::Failed("the log answered no offset".into()))
    }
    /// Appends records to one queue at once, all or none; returns their offsets in order.
    async fn append_many(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<u64>>;
    /// Reads one record back by its id.
    async fn read(&self, id: MessageId) -> StoreResult<Option<Record>>;
    /// Offsets of every partition that has ever had a record.
    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>>;
    /// Number of retained records whose TTL has not passed at `now`, counting each listed
    /// partition from the given offset and every other partition whole.
    async fn count_live(&self, queue: QueueId, now: Timestamp, from: &[(u32, u64)]) -> StoreResult<u64>;
    /// Removes records published before `before`, then the oldest while more than `max_bytes` remain.
    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64>;
    /// Removes every record of a queue.
    async fn delete_log(&self, queue: QueueId) -> StoreResult<()>;
    /// Checks the backend answers, and describes it.
    async fn describe(&self) -> StoreResult<BackendInfo>;
}

/// Queues and subscriptions.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates a queue; `Conflict` when the name is taken.
    async fn create_queue(&self, name: &QueueName, settings: &QueueSettings, owner: Option<&str>)
    -> StoreResult<Queue>;
    /// Replaces a queue's settings; `NotFound` when it is gone.
    async fn update_queue(&self, id: QueueId, settings: &QueueSettings) -> StoreResult<Queue>;
    /// Looks a queue up by name.
    async fn queue(&self, name: &QueueName) -> StoreResult<Option<Queue>>;
    /// Looks a queue up by id.
    async fn queue_by_id(&self, id: QueueId) -> StoreResult<Option<Queue>>;
    /// Every queue, by name.
    async fn queues(&self) -> StoreResult<Vec<Queue>>;
    /// Deletes a queue and its subscriptions; false when it did not exist.
    async fn delete_queue(&self, id: QueueId) -> StoreResult<bool>;
    /// Stores a new subscription.
    async fn create_subscription(&self, sub: &Subscription) -> StoreResult<()>;
    /// Looks a subscription up by id.
    async fn subscription(&self, id: &str) -> StoreResult<Option<Subscription>>;
    /// The subscriptions of one queue, or of all.
    async fn subscriptions(&self, queue: Option<QueueId>) -> StoreResult<Vec<Subscription>>;
    /// Replaces a subscription's document; `NotFound` when it is gone.
    async fn update_subscription(&self, sub: &Subscription) -> StoreResult<()>;
    /// Deletes a subscription; false when it did not exist.
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool>;
}
