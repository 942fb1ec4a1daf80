//! Per-group delivery state, in the style of Kafka's share groups (KIP-932):
//! per (group, partition) a fetch offset, and per delivered record its state,
//! lease and counts. Every change is a conditional write, so any number of
//! processes may consume one group at once. Retries are scheduled here: a
//! released record becomes available again at the time it names.

use async_trait::async_trait;

use super::{PartitionInfo, QueueId, Record, StoreResult};
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

/// What an acquire leased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acquired {
    pub leases: Vec<Lease>,
    /// Records retention removed before this group reached them: gone for it (counted as expired).
    pub skipped: u64,
    /// The leases' records, in their order, when the store holds the log too and read them in the
    /// same round trip (`None` in the list where retention removed one); `None` when it did not.
    pub records: Option<Vec<Option<Record>>>,
}

impl Acquired {
    /// Adds what a further acquire leased; the records stay only when both read them.
    pub fn extend(&mut self, more: Acquired) {
        self.leases.extend(more.leases);
        self.skipped += more.skipped;
        self.records = match (self.records.take(), more.records) {
            (Some(mut records), Some(more)) => {
                records.extend(more);
                Some(records)
            }
            _ => None,
        };
    }
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

/// A group's position on a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPosition {
    pub group: GroupRef,
    /// Next offset never handed out, per partition.
    pub fetch_offsets: Vec<(u32, u64)>,
    pub leased: u64,
    pub available: u64,
    /// Lowest offset leased or available (delivered, not finished), per partition that has one.
    pub oldest_open: Vec<(u32, u64)>,
}

/// Leases and settlements of delivery groups.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Leases up to `max` records to a consumer: lapsed leases become available first, then due
    /// available records come first, then new offsets. No record is leased to two consumers at once.
    async fn acquire(&self, req: &AcquireRequest) -> StoreResult<Acquired>;
    /// Applies a settlement if the record's state allows it; a finished record refuses every
    /// settlement (`Finished`), so a caller decides itself whether a repeat is a success.
    async fn settle(&self, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>>;
    /// Every group's state of one record, by group.
    async fn deliveries(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<Delivery>>;
    /// Every group that has consumed from the queue, with its position.
    async fn groups(&self, queue: QueueId) -> StoreResult<Vec<GroupPosition>>;
    /// Starts a group at the given offsets (a new subscription starts at the end of the log);
    /// a group that has started keeps its position.
    async fn start_group(&self, queue: QueueId, group: &GroupRef, offsets: &[(u32, u64)]) -> StoreResult<()>;
    /// Records whose lease held by one consumer of a group lasts past `now`.
    async fn leased_by(&self, queue: QueueId, group: &GroupRef, consumer: &str, now: Timestamp) -> StoreResult<u64>;
    /// Drops state of records below the log's start offsets (after retention).
    async fn forget_below(&self, queue: QueueId, starts: &[(u32, u64)]) -> StoreResult<()>;
    /// Drops every state of one group (a deleted subscription).
    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()>;
    /// Drops every state of a queue (a deleted queue).
    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()>;
}
