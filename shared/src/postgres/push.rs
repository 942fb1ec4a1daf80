//! Push attempts on PostgreSQL: one row per attempt, one run of failures per group, updated by
//! one statement so instances pushing to one subscription count every failure.

use async_trait::async_trait;

use super::{PgStore, big, unsigned};
use crate::{
    domain::Timestamp,
    ports::{AttemptRecord, FailureRun, GroupRef, PushLog, QueueId, StoreResult},
};

#[async_trait]
impl PushLog for PgStore {
    async fn record_attempt(&self, a: &AttemptRecord) -> StoreResult<FailureRun> {
        let (queue, grp, status) = (big(a.queue), a.group.key(), a.status.map(i32::from));
        self.execute(
            "INSERT INTO message_attempts (queue_id, grp, partition, \"offset\", at, status, latency_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&queue, &grp, &(a.partition as i32), &big(a.offset), &a.at.0, &status, &big(a.latency_ms), &a.error],
        )
        .await?;
        // A success ends the run of failures; a failure extends it, starting it if needed.
        let (failures, since): (i64, Option<i64>) = if a.succeeded() { (0, None) } else { (1, Some(a.at.0)) };
        let row = self
            .query_opt(
                "INSERT INTO message_failure_runs AS f (queue_id, grp, failures, since) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (queue_id, grp) DO UPDATE SET
                    failures = CASE WHEN $3 = 0 THEN 0 ELSE f.failures + 1 END,
                    since = CASE WHEN $3 = 0 THEN NULL ELSE COALESCE(f.since, $4) END
                 RETURNING failures, since",
                &[&queue, &grp, &failures, &since],
            )
            .await?;
        Ok(row.map_or_else(FailureRun::default, |r| FailureRun {
            failures: unsigned(r.get(0)),
            since: r.get::<_, Option<i64>>(1).map(Timestamp),
        }))
    }

    async fn attempts(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<AttemptRecord>> {
        let rows = self
            .query(
                "SELECT grp, at, status, latency_ms, error FROM message_attempts
                 WHERE queue_id = $1 AND partition = $2 AND \"offset\" = $3 ORDER BY at, id",
                &[&big(queue), &(partition as i32), &big(offset)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let key: String = r.get(0);
                AttemptRecord {
                    queue,
                    group: GroupRef::from_key(&key).unwrap_or(GroupRef::Subscription(key)),
                    partition,
                    offset,
                    at: Timestamp(r.get(1)),
                    status: r.get::<_, Option<i32>>(2).and_then(|s| u16::try_from(s).ok()),
                    latency_ms: unsigned(r.get(3)),
                    error: r.get(4),
                }
            })
            .collect())
    }

    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, Some(&group.key())).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, None).await
    }
}

const TABLES: [&str; 2] = ["message_attempts", "message_failure_runs"];
