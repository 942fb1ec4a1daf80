//! Delivery groups' state on SQLite. Each call is one transaction of the
//! writer, so the checks and changes of one call cannot interleave with another's.

use async_trait::async_trait;
use rusqlite::params;

use super::{
    SqliteStore,
    leases::{DELIVERY_COLUMNS, acquire, delivery_from_row, groups, settle},
    writer::backend,
};
use crate::{
    domain::Timestamp,
    ports::{
        AcquireRequest, Acquired, Delivery, GroupPosition, GroupRef, LeaseStore, QueueId, SettleRefusal, SettleRequest,
        StoreResult,
    },
};

/// The tables of delivery state, each keyed by queue and group.
const TABLES: [&str; 2] = ["group_offsets", "deliveries"];

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire(&self, req: &AcquireRequest) -> StoreResult<Acquired> {
        let req = req.clone();
        self.writing_relaxed(move |conn| acquire(conn, &req)).await
    }

    async fn settle(&self, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>> {
        let req = req.clone();
        self.writing_relaxed(move |conn| settle(conn, &req)).await
    }

    async fn deliveries(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<Delivery>> {
        self.reading_now(|conn| {
            let mut stmt = conn.prepare_cached(&deliveries_of_record()).map_err(backend)?;
            let rows = stmt.query_map(params![queue, partition, offset], delivery_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    async fn groups(&self, queue: QueueId) -> StoreResult<Vec<GroupPosition>> {
        self.reading(move |conn| groups(conn, queue)).await
    }

    async fn start_group(&self, queue: QueueId, group: &GroupRef, offsets: &[(u32, u64)]) -> StoreResult<()> {
        let (grp, offsets) = (group.key(), offsets.to_vec());
        self.writing_relaxed(move |conn| {
            for (partition, offset) in offsets {
                conn.prepare_cached(
                    "INSERT INTO group_offsets (queue_id, grp, partition, fetch_offset) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![queue, grp, partition, offset]))
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn leased_by(&self, queue: QueueId, group: &GroupRef, consumer: &str, now: Timestamp) -> StoreResult<u64> {
        let (grp, consumer) = (group.key(), consumer.to_owned());
        self.reading_now(|conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM deliveries
                 WHERE queue_id = ?1 AND grp = ?2 AND state = 'leased' AND consumer = ?3 AND until > ?4",
            )
            .and_then(|mut s| s.query_row(params![queue, grp, consumer, now.0], |r| r.get(0)))
            .map_err(backend)
        })
    }

    async fn forget_below(&self, queue: QueueId, starts: &[(u32, u64)]) -> StoreResult<()> {
        let starts = starts.to_vec();
        self.writing_relaxed(move |conn| {
            for (partition, start) in starts {
                conn.prepare_cached("DELETE FROM deliveries WHERE queue_id = ?1 AND partition = ?2 AND offset < ?3")
                    .and_then(|mut s| s.execute(params![queue, partition, start]))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, Some(group.key())).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, None).await
    }
}

/// Every group's delivery of one record. Pinned to `deliveries_by_record`: left to itself, SQLite
/// served `ORDER BY grp` from the primary key and read every delivery row of the queue.
pub(super) fn deliveries_of_record() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries INDEXED BY deliveries_by_record
         WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 ORDER BY grp"
    )
}
