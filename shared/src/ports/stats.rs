//! Counters of what happened to a queue's messages, summed over its groups.
//! Many writers add to them; a backend may spread or batch the additions. Time buckets of
//! counts and latency histograms ([`Statistics`]) answer for any range.

use async_trait::async_trait;

use super::{QueueId, StoreResult};
use crate::domain::{Figures, Timestamp};

/// A queue's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Deliveries handed out, redeliveries included.
    pub consumed: u64,
    pub redelivered: u64,
    pub acknowledged: u64,
    /// Rejected without requeue and not dead-lettered.
    pub rejected: u64,
    pub requeued: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

/// Changes to a queue's counters (negative to take back a count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterDelta {
    pub consumed: i64,
    pub redelivered: i64,
    pub acknowledged: i64,
    pub rejected: i64,
    pub requeued: i64,
    pub dead_lettered: i64,
    pub expired: i64,
}

impl CounterDelta {
    /// Each counter with its name, as stored.
    pub fn named(&self) -> [(&'static str, i64); 7] {
        [
            ("consumed", self.consumed),
            ("redelivered", self.redelivered),
            ("acknowledged", self.acknowledged),
            ("rejected", self.rejected),
            ("requeued", self.requeued),
            ("dead_lettered", self.dead_lettered),
            ("expired", self.expired),
        ]
    }

    pub fn is_zero(&self) -> bool {
        self.named().iter().all(|(_, n)| *n == 0)
    }
}

impl QueueCounters {
    /// The counter of that stored name.
    pub fn slot(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "consumed" => &mut self.consumed,
            "redelivered" => &mut self.redelivered,
            "acknowledged" => &mut self.acknowledged,
            "rejected" => &mut self.rejected,
            "requeued" => &mut self.requeued,
            "dead_lettered" => &mut self.dead_lettered,
            "expired" => &mut self.expired,
            _ => return None,
        })
    }
}

/// A queue's counters.
#[async_trait]
pub trait QueueStats: Send + Sync + 'static {
    /// Adds to a queue's counters. A backend may answer before the addition is stored, as long
    /// as `counters` called afterwards by the same process includes it.
    async fn add(&self, queue: QueueId, delta: &CounterDelta) -> StoreResult<()>;
    /// A queue's counters.
    async fn counters(&self, queue: QueueId) -> StoreResult<QueueCounters>;
    /// Drops a queue's counters.
    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()>;
}

/// Figures of one queue in one time bucket `[start, start + width)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsBucket {
    pub queue: QueueId,
    pub start: Timestamp,
    pub width_ms: u64,
    pub figures: Figures,
}

/// Figures of operations whose queue is not known (a publish to a queue that does not exist).
pub const NO_QUEUE: QueueId = 0;

/// Time buckets of figures, flushed by every process and merged per range by whoever reads.
#[async_trait]
pub trait Statistics: Send + Sync + 'static {
    /// Adds each bucket's figures to the stored bucket of the same queue, start and width.
    async fn merge_buckets(&self, buckets: Vec<StatsBucket>) -> StoreResult<()>;
    /// Buckets that start in `[from, to)`, of one queue or of all.
    async fn buckets(&self, queue: Option<QueueId>, from: Timestamp, to: Timestamp) -> StoreResult<Vec<StatsBucket>>;
    /// Merges buckets of `width_ms` that start before `before` into buckets of `into_ms`;
    /// answers how many were merged away.
    async fn roll_up(&self, width_ms: u64, into_ms: u64, before: Timestamp) -> StoreResult<u64>;
    /// Removes buckets that start before `before`; answers how many.
    async fn expire_buckets(&self, before: Timestamp) -> StoreResult<u64>;
}
