//! Queue counters on SQLite: one row per queue and counter. Additions are queued
//! to the writer without waiting (they commit with the next transaction, in
//! order), and counters are read through the writer, after every addition
//! queued before: a caller reads its own additions, and nobody waits for a counter.

use async_trait::async_trait;
use rusqlite::params;

use super::{SqliteStore, writer::backend};
use crate::ports::{CounterDelta, QueueCounters, QueueId, QueueStats, StoreResult};

#[async_trait]
impl QueueStats for SqliteStore {
    async fn add(&self, queue: QueueId, delta: &CounterDelta) -> StoreResult<()> {
        if delta.is_zero() {
            return Ok(());
        }
        let delta = *delta;
        self.queue_write(move |conn| {
            for (name, by) in delta.named().into_iter().filter(|(_, by)| *by != 0) {
                conn.prepare_cached(
                    "INSERT INTO counters (queue_id, name, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (queue_id, name) DO UPDATE SET value = value + ?3",
                )
                .and_then(|mut s| s.execute(params![queue, name, by]))
                .map_err(backend)?;
            }
            Ok(())
        })
    }

    async fn counters(&self, queue: QueueId) -> StoreResult<QueueCounters> {
        self.writing_relaxed(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, value FROM counters WHERE queue_id = ?1").map_err(backend)?;
            let rows =
                stmt.query_map([queue], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(backend)?;
            let mut counters = QueueCounters::default();
            for row in rows {
                let (name, value) = row.map_err(backend)?;
                if let Some(slot) = counters.slot(&name) {
                    *slot = value.max(0) as u64;
                }
            }
            Ok(counters)
        })
        .await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&["counters", "stats_buckets"], queue, None).await
    }
}
