//! Registered consumers of `/api/v1` groups, the consumers seen consuming, and
//! rate limits. Rate limiting is a port of its own, so it can live elsewhere
//! (Redis, say) than the registry.

use async_trait::async_trait;

use super::{QueueId, StoreResult};
use crate::domain::Timestamp;

/// A registered consumer and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRecord {
    pub group: String,
    pub consumer: String,
    pub topics: Vec<String>,
    pub max_concurrency: Option<u32>,
    /// Messages per second.
    pub rate_limit: Option<u32>,
    pub registered_at: Timestamp,
    /// When it last consumed, from any queue.
    pub last_seen_at: Option<Timestamp>,
}

/// Registered consumers, and which consumers are attached to a queue.
#[async_trait]
pub trait ConsumerRegistry: Send + Sync + 'static {
    /// Registers (or re-registers, replacing its limits and resetting its rate) a consumer.
    async fn register_consumer(&self, consumer: &ConsumerRecord) -> StoreResult<()>;
    /// A registered consumer.
    async fn consumer(&self, group: &str, consumer: &str) -> StoreResult<Option<ConsumerRecord>>;
    /// Notes that a consumer of a group consumed from a queue at `now`.
    async fn seen(&self, queue: QueueId, group: &str, consumer: &str, now: Timestamp) -> StoreResult<()>;
    /// Consumers of a queue: registered for its name, or seen consuming from it since `since`.
    async fn active_consumers(&self, queue: QueueId, name: &str, since: Timestamp) -> StoreResult<u64>;
    /// Drops what was seen of one group on a queue.
    async fn forget_group(&self, queue: QueueId, group: &str) -> StoreResult<()>;
    /// Drops what was seen on a queue (a deleted queue); registrations stay.
    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()>;
}

/// A token bucket per consumer holding one second of its rate, refilled continuously.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Takes up to `want` tokens at `now` from a bucket of `rate` per second; answers how many it got.
    async fn take_tokens(&self, group: &str, consumer: &str, want: u32, rate: u32, now: Timestamp) -> StoreResult<u32>;
    /// Refills a consumer's bucket: a re-registered consumer starts full.
    async fn reset(&self, group: &str, consumer: &str) -> StoreResult<()>;
}
