//! Moving records a store kept in its own log (the embedded store's SQLite table, before
//! the log moved to segment files) into a [`SegmentLog`], keeping every offset, so nothing
//! accepted before an upgrade is lost. A queue is copied whole, checked, and only then
//! removed from the old log; a crash part way through copies it again on the next start.

use super::SegmentLog;
use crate::{
    error::StoreError,
    ports::{LogSpec, MessageLog, MetadataStore, ReadLimit, StoreResult},
};

/// Records read from the old log per call.
const CHUNK: ReadLimit = ReadLimit { records: 1000, bytes: 16 << 20 };

/// Moves every queue's records from `old` into `new`; answers how many records moved.
pub async fn move_records(old: &dyn MessageLog, meta: &dyn MetadataStore, new: &SegmentLog) -> StoreResult<u64> {
    let mut moved = 0;
    for queue in meta.queues().await? {
        let parts = old.partitions(queue.id).await?;
        if parts.iter().all(|p| p.end_offset == 0) {
            if !parts.is_empty() {
                old.delete_log(queue.id).await?;
            }
            continue;
        }
        // A copy left by a crash before the old log was emptied is made again.
        new.delete_log(queue.id).await?;
        let spec = LogSpec { partitions: parts.len() as u32, replication: 1, retention_ms: None, max_bytes: None };
        new.create_log(queue.id, &spec).await?;
        for p in &parts {
            new.begin_at(queue.id, p.partition, p.start_offset)?;
            let mut from = p.start_offset;
            while from < p.end_offset {
                let chunk = old.read_range(queue.id, p.partition, from, CHUNK).await?;
                let Some((last, _)) = chunk.last() else { break };
                from = last + 1;
                let (offsets, records): (Vec<u64>, Vec<_>) =
                    chunk.into_iter().map(|(o, r)| (o, (p.partition, r))).unzip();
                let written = new.append(queue.id, records).await?;
                for (want, got) in offsets.iter().zip(written) {
                    if got? != *want {
                        return Err(StoreError::Failed(format!(
                            "queue {}: offset {want} moved out of place",
                            queue.id
                        )));
                    }
                }
                moved += offsets.len() as u64;
            }
            new.end_at(queue.id, p.partition, p.end_offset)?;
        }
        old.delete_log(queue.id).await?;
    }
    Ok(moved)
}
