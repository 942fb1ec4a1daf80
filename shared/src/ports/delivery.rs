//! Per-group delivery state, in the style of Kafka's share groups (KIP-932):
//! per (group, partition) a fetch offset, and per delivered record a row with
//! its state, lease and counts. Every change is a conditional write, so any
//! number of processes may consume one group at once.

use async_trait::async_trait;

use super::{PartitionInfo, QueueId, StoreResult};
use crate::domain::{MessageId, Timestamp};

/// A delivery group: the consumers of one `/api/v1` `group_id`, or one push subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupRef {
    Consumers(String),
    Subscription(String),
}

impl GroupRef {
    /// The stored form: `g:<group_id>` or `s:<subscription_id>`.
    pub fn key(&self) -> String {
        match self {
            Self::Consumers(g) => format!("g:{g}"),
            Self::Subscription(s) => format!("s:{s}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("g", g) => Some(Self::Consumers(g.to_owned())),
            ("s", s) => Some(Self::Subscription(s.to_owned())),
            _ => None,
        }
    }

    /// The name users know the group by.
    pub fn name(&self) -> &str {
        match self {
            Self::Consumers(n) | Self::Subscription(n) => n,
        }
    }
}

/// Where one record is in one group's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Held by a consumer until its lease ends.
    Leased,
    /// Waiting to be delivered again (requeued, or its lease lapsed).
    Available,
    Acknowledged,
    /// Rejected without requeue and dropped (no dead-letter queue).
    Rejected,
    DeadLettered,
    /// Its TTL passed, or retention removed it, before it was finished.
    Expired,
}

impl DeliveryState {
    pub const ALL: [Self; 6] =
        [Self::Leased, Self::Available, Self::Acknowledged, Self::Rejected, Self::DeadLettered, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leased => "leased",
            Self::Available => "available",
            Self::Acknowledged => "acknowledged",
            Self::Rejected => "rejected",
            Self::DeadLettered => "dead_lettered",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True once the group is done with the record.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Leased | Self::Available)
    }
}

/// One record's state in one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub group: GroupRef,
    pub partition: u32,
    pub offset: u64,
    pub state: DeliveryState,
    /// Times the record was handed out to this group.
    pub delivery_count: u32,
    /// Times it was requeued by a reject or a negative acknowledgement.
    pub retry_count: u32,
    pub consumer: Option<String>,
    /// End of the lease (leased) or when it may be delivered again (available).
    pub until: Option<Timestamp>,
    pub first_delivered_at: Option<Timestamp>,
    pub last_delivered_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub reason: Option<String>,
}

/// A request to lease records to a consumer of a group.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    pub queue: QueueId,
    pub group: GroupRef,
    pub consumer: String,
    pub max: u32,
    pub lease_ms: u64,
    pub now: Timestamp,
    /// The partitions to lease from: offsets `start_offset..end_offset` exist.
    pub partitions: Vec<PartitionInfo>,
    /// Ordered delivery: take new offsets only from partitions with nothing leased or awaiting
    /// redelivery, at most this many from each.
    pub per_partition: Option<u32>,
}

/// A leased record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub offset: u64,
    pub delivery_count: u32,
    pub retry_count: u32,
    pub until: Timestamp,
}

/// What to do with a delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Acknowledge,
    /// Make it available again at this time, counting a retry.
    Release {
        at: Timestamp,
    },
    /// Keep the lease until this time.
    Extend {
        until: Timestamp,
    },
    /// Lease it to the service itself until this time, from leased or available
    /// (reserves a record while it is being dead-lettered).
    Hold {
        until: Timestamp,
    },
    /// Finish it without success; `dead_lettered` once a copy is in the dead-letter queue.
    Drop {
        cause: DropCause,
        dead_lettered: bool,
        /// False when the record was leased only to be dropped, never handed to a consumer:
        /// its lease is then not counted as consumed.
        handed_out: bool,
    },
}

/// Why a record is finished without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    Rejected,
    Expired,
    DeliveryLimit,
}

impl DropCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::DeliveryLimit => "delivery_limit",
        }
    }

    /// The state a record ends in when it is not dead-lettered.
    pub fn final_state(self) -> DeliveryState {
        match self {
            Self::Rejected | Self::DeliveryLimit => DeliveryState::Rejected,
            Self::Expired => DeliveryState::Expired,
        }
    }
}

/// A conditional change to one record's state in one group.
#[derive(Debug, Clone)]
pub struct SettleRequest {
    pub queue: QueueId,
    pub group: GroupRef,
    pub partition: u32,
    pub offset: u64,
    pub settlement: Settlement,
    pub now: Timestamp,
    /// When set, the change applies only while the record's delivery count is this
    /// (the delivery the caller received has not been superseded).
    pub expect_delivery: Option<u32>,
    pub reason: Option<String>,
}

impl SettleRequest {
    /// A settlement of the message at `id` for `group`, at `now`; `delivery` names the delivery
    /// it applies to (`None`: whichever is current).
    pub fn new(id: MessageId, group: &GroupRef, settlement: Settlement, now: Timestamp, delivery: Option<u32>) -> Self {
        Self {
            queue: id.queue_id,
            group: group.clone(),
            partition: id.partition,
            offset: id.offset,
            settlement,
            now,
            expect_delivery: delivery,
            reason: None,
        }
    }
}

/// Why a settlement was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum SettleRefusal {
    /// The group never received the record.
    NotDelivered,
    /// The group is already done with it (state given).
    Finished(Delivery),
    /// It was delivered again since the caller's delivery.
    Superseded(Delivery),
    /// A lease can only be extended while it holds.
    NotLeased(Delivery),
}

/// Counters of a queue, summed over its groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    pub consumed: u64,
    pub redelivered: u64,
    pub acknowledged: u64,
    pub rejected: u64,
    pub requeued: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

/// A group's position on a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPosition {
    pub group: GroupRef,
    /// Next offset never handed out, per partition.
    pub fetch_offsets: Vec<(u32, u64)>,
    pub leased: u64,
    pub available: u64,
}

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
    pub last_seen_at: Option<Timestamp>,
}

/// Delivery state: leases, settlements, counters, consumers.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Leases up to `max` records: due available ones first, then new offsets; lapsed leases become available.
    async fn acquire(&self, req: &AcquireRequest) -> StoreResult<Vec<Lease>>;
    /// Applies a settlement if the record's state allows it.
    async fn settle(&self, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>>;
    /// Every group's state of one record.
    async fn deliveries(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<Delivery>>;
    /// The queue's counters.
    async fn counters(&self, queue: QueueId) -> StoreResult<QueueCounters>;
    /// Every group that has consumed from the queue, with its position.
    async fn groups(&self, queue: QueueId) -> StoreResult<Vec<GroupPosition>>;
    /// Starts a group at the given offsets (a new subscription starts at the end of the log).
    async fn start_group(&self, queue: QueueId, group: &GroupRef, offsets: &[(u32, u64)]) -> StoreResult<()>;
    /// Records currently leased by one consumer of a group.
    async fn leased_by(&self, queue: QueueId, group: &GroupRef, consumer: &str, now: Timestamp) -> StoreResult<u64>;
    /// Registers (or re-registers) a consumer.
    async fn register_consumer(&self, consumer: &ConsumerRecord) -> StoreResult<()>;
    /// A registered consumer.
    async fn consumer(&self, group: &str, consumer: &str) -> StoreResult<Option<ConsumerRecord>>;
    /// Takes up to `want` tokens of a consumer's rate limit; answers how many it got.
    async fn take_tokens(&self, group: &str, consumer: &str, want: u32, rate: u32, now: Timestamp) -> StoreResult<u32>;
    /// Consumers of a queue's consumer groups: registered for its name, or seen consuming from it
    /// since `since`. A subscription's dispatcher is not one (subscriptions are counted apart).
    async fn active_consumers(&self, queue: QueueId, name: &str, since: Timestamp) -> StoreResult<u64>;
    /// Drops delivery rows of records below the log's start offsets (after retention).
    async fn forget_below(&self, queue: QueueId, starts: &[(u32, u64)]) -> StoreResult<()>;
    /// Drops every row of one group (a deleted subscription).
    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()>;
    /// Records one push attempt and updates the group's run of failures; answers that run.
    async fn record_attempt(&self, attempt: &AttemptRecord) -> StoreResult<FailureRun>;
    /// Every push attempt of one record, oldest first.
    async fn attempts(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<AttemptRecord>>;
}

/// One push attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub queue: QueueId,
    pub group: GroupRef,
    pub partition: u32,
    pub offset: u64,
    pub at: Timestamp,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

impl AttemptRecord {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A group's current run of failed attempts: none after any success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureRun {
    pub failures: u64,
    pub since: Option<Timestamp>,
}
