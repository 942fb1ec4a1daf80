//! Push attempts on SQLite: one row per attempt, one run of failures per group.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::Timestamp,
    ports::{AttemptRecord, FailureRun, GroupRef, PushLog, QueueId, StoreResult},
};

const TABLES: [&str; 2] = ["attempts", "failure_runs"];

/// Every push attempt of one record, oldest first.
pub(super) const ATTEMPTS_OF_RECORD: &str = "SELECT grp, at, status, latency_ms, error FROM attempts
     INDEXED BY attempts_by_record WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 ORDER BY at, rowid";

#[async_trait]
impl PushLog for SqliteStore {
    async fn record_attempt(&self, a: &AttemptRecord) -> StoreResult<FailureRun> {
        let a = a.clone();
        self.writing_relaxed(move |conn| record_attempt(conn, &a)).await
    }

    async fn attempts(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<AttemptRecord>> {
        self.reading_now(|conn| {
            let mut stmt = conn.prepare_cached(ATTEMPTS_OF_RECORD).map_err(backend)?;
            let rows = stmt
                .query_map(params![queue, partition, offset], |r| {
                    let key: String = r.get(0)?;
                    Ok(AttemptRecord {
                        queue,
                        group: GroupRef::from_key(&key).unwrap_or(GroupRef::Subscription(key)),
                        partition,
                        offset,
                        at: Timestamp(r.get(1)?),
                        status: r.get(2)?,
                        latency_ms: r.get(3)?,
                        error: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, Some(group.key())).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, None).await
    }
}

fn record_attempt(conn: &Connection, a: &AttemptRecord) -> StoreResult<FailureRun> {
    let grp = a.group.key();
    conn.prepare_cached(
        "INSERT INTO attempts (queue_id, grp, partition, offset, at, status, latency_ms, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| s.execute(params![a.queue, grp, a.partition, a.offset, a.at.0, a.status, a.latency_ms, a.error]))
    .map_err(backend)?;
    // A success ends the run of failures; a failure extends it, starting it if needed.
    let (failures, since) = if a.succeeded() { (0, None) } else { (1, Some(a.at.0)) };
    conn.prepare_cached(
        "INSERT INTO failure_runs (queue_id, grp, failures, since) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue_id, grp) DO UPDATE SET
            failures = CASE WHEN ?3 = 0 THEN 0 ELSE failures + 1 END,
            since = CASE WHEN ?3 = 0 THEN NULL ELSE COALESCE(since, ?4) END
         RETURNING failures, since",
    )
    .and_then(|mut s| {
        s.query_row(params![a.queue, grp, failures, since], |r| {
            Ok(FailureRun { failures: r.get(0)?, since: r.get::<_, Option<i64>>(1)?.map(Timestamp) })
        })
    })
    .map_err(backend)
}
