//! Queues and subscriptions: the metadata every entry point reads.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{BackendInfo, Queue, QueueId, QueueSettings, StoreResult};
use crate::{
    callback::CallbackUrl,
    domain::{QueueName, RoutingPattern, Timestamp},
    routing::HeaderMatch,
};

/// Spec 000's retry policy: `retry_delay` ms, times `backoff_multiplier` per attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub retry_delay: u64,
    pub backoff_multiplier: f64,
}

/// Whether a subscription's messages are being pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    Paused,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Paused].into_iter().find(|st| st.as_str() == s)
    }
}

/// A push subscription: a delivery group of its own that POSTs matching messages to a URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub queue_id: QueueId,
    pub queue: QueueName,
    pub routing_key: RoutingPattern,
    pub callback_url: CallbackUrl,
    /// Headers sent with every delivery (often credentials; never answered back).
    pub headers: BTreeMap<String, String>,
    pub retry_policy: RetryPolicy,
    pub dead_letter_queue: Option<QueueName>,
    /// Most deliveries in flight at once.
    pub prefetch_count: u32,
    /// Headers routing (RabbitMQ's headers exchange), besides the routing pattern.
    pub match_headers: Option<HeaderMatch>,
    /// Ordered delivery: one message at a time per partition (so per key), a failing one holding
    /// its partition until it is delivered or dead-lettered. Unordered (the default): retries wait
    /// in the store's schedule while later messages go on.
    pub ordered: bool,
    pub status: SubscriptionStatus,
    /// Why the subscription is paused, when it is.
    pub paused_reason: Option<String>,
    /// The Standard Webhooks signing secret (`whsec_...`), answered once at creation.
    pub secret: String,
    pub owner: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Subscription {
    pub fn is_active(&self) -> bool {
        self.status == SubscriptionStatus::Active
    }

    /// Whether the subscription gets a message with this routing key and these headers.
    pub fn selects(&self, routing_key: Option<&str>, headers: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.routing_key.matches(routing_key.unwrap_or(""))
            && self.match_headers.as_ref().is_none_or(|m| m.matches(headers))
    }
}

/// Queues and subscriptions.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates a queue, stamped `now`; `Conflict` when the name is taken. Ids are never reused.
    async fn create_queue(
        &self,
        name: &QueueName,
        settings: &QueueSettings,
        owner: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Queue>;
    /// Replaces a queue's settings, stamped `now`; `NotFound` when it is gone.
    async fn update_queue(&self, id: QueueId, settings: &QueueSettings, now: Timestamp) -> StoreResult<Queue>;
    /// Looks a queue up by name.
    async fn queue(&self, name: &QueueName) -> StoreResult<Option<Queue>>;
    /// Looks a queue up by id.
    async fn queue_by_id(&self, id: QueueId) -> StoreResult<Option<Queue>>;
    /// Every queue, by name.
    async fn queues(&self) -> StoreResult<Vec<Queue>>;
    /// Deletes a queue and its subscriptions; false when it did not exist.
    async fn delete_queue(&self, id: QueueId) -> StoreResult<bool>;
    /// Stores a new subscription; `NotFound` when its queue is gone, `Conflict` when the id is taken.
    async fn create_subscription(&self, sub: &Subscription) -> StoreResult<()>;
    /// Looks a subscription up by id.
    async fn subscription(&self, id: &str) -> StoreResult<Option<Subscription>>;
    /// The subscriptions of one queue, or of all, by id.
    async fn subscriptions(&self, queue: Option<QueueId>) -> StoreResult<Vec<Subscription>>;
    /// Replaces a subscription; `NotFound` when it is gone.
    async fn update_subscription(&self, sub: &Subscription) -> StoreResult<()>;
    /// Deletes a subscription; false when it did not exist.
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool>;
    /// Checks the store answers (a cheap round trip that reaches its storage), and describes it.
    async fn describe(&self) -> StoreResult<BackendInfo>;
}
