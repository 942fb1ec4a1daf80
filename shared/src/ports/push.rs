//! Push attempts: every delivery attempt to a subscription's callback, and each
//! subscription's current run of failures (which pauses it when long).

use async_trait::async_trait;

use super::{GroupRef, QueueId, StoreResult};
use crate::domain::Timestamp;

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

/// Push attempts and runs of failures.
#[async_trait]
pub trait PushLog: Send + Sync + 'static {
    /// Records one attempt and updates the group's run of failures; answers that run.
    async fn record_attempt(&self, attempt: &AttemptRecord) -> StoreResult<FailureRun>;
    /// Every attempt at one record, oldest first.
    async fn attempts(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<AttemptRecord>>;
    /// Drops the attempts and run of one group.
    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()>;
    /// Drops every attempt of a queue.
    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()>;
}
