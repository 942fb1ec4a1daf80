//! The message log: each queue's records in partitions, each partition an
//! append-only sequence of offsets (Kafka's model).

use async_trait::async_trait;

use super::{BackendInfo, PartitionInfo, QueueId, Record, StoreResult};
use crate::domain::{MessageId, Timestamp};

/// What a queue's log is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSpec {
    pub partitions: u32,
    /// Copies of each partition a replicated log keeps (Kafka's replication factor).
    pub replication: u32,
    /// How long records are kept; `None`: the deployment's default.
    pub retention_ms: Option<u64>,
    /// Oldest records are removed while the log holds more bytes than this.
    pub max_bytes: Option<u64>,
}

/// How much one range read answers: at most `records`, and no more records once `bytes` of
/// content are reached (the first record is answered whatever its size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimit {
    pub records: u32,
    pub bytes: u64,
}

impl ReadLimit {
    /// One record.
    pub const ONE: Self = Self { records: 1, bytes: u64::MAX };
}

/// The log of records, partitioned per queue.
///
/// Guarantees every backend gives:
/// - An offset answered by [`MessageLog::append`] is durable: it survives a crash and is read back.
/// - Offsets of a partition are dense and increase in append order; records appended in one call to
///   one partition keep their order.
/// - `append` answers each record on its own: a backend may fail some and keep others (as Kafka
///   without transactions does). A record whose result is an error was not appended.
/// - A record stays readable at its offset until retention or a deletion removes it; removal takes
///   a partition's oldest records first, so retained offsets are always `start..end`.
#[async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Creates a queue's log with its partitions. Creating it again is not an error, and may
    /// add partitions (never removes any).
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()>;
    /// Removes a queue's log and every record in it.
    async fn delete_log(&self, queue: QueueId) -> StoreResult<()>;
    /// Appends records to one queue's partitions; answers each record's offset, in order.
    /// `NotFound` (for the whole call) when the log or a partition does not exist.
    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>>;
    /// Reads records of one partition from offset `from` on, in offset order, within `limit`.
    /// Offsets below the partition's start are skipped; an empty answer means none from `from`.
    async fn read_range(
        &self,
        queue: QueueId,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>>;
    /// Reads one record back by its id.
    async fn read(&self, id: MessageId) -> StoreResult<Option<Record>> {
        let found = self.read_range(id.queue_id, id.partition, id.offset, ReadLimit::ONE).await?;
        Ok(found.into_iter().find(|(offset, _)| *offset == id.offset).map(|(_, record)| record))
    }
    /// Offsets of every partition of a queue's log.
    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>>;
    /// Removes records published before `before`, then the oldest while more than `max_bytes` remain;
    /// answers how many it removed.
    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64>;
    /// Checks the backend answers, and describes it.
    async fn describe(&self) -> StoreResult<BackendInfo>;
    /// Whether the backend removes records past their retention by itself (Kafka's
    /// `retention.ms` and `retention.bytes`, set when the log is made, or kept as the owner of a
    /// topic made elsewhere set them): then the service's retention pass does not trim it.
    fn retains_by_itself(&self) -> bool {
        false
    }
}
