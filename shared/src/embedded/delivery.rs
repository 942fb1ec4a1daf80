//! Delivery state on SQLite. Each call is one transaction of the writer, so
//! the checks and changes of one call cannot interleave with another's.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    SqliteStore,
    leases::{DELIVERY_COLUMNS, acquire, delivery_from_row, groups, settle},
    writer::backend,
};
use crate::{
    domain::Timestamp,
    ports::{
        AcquireRequest, AttemptRecord, ConsumerRecord, Delivery, DeliveryStore, FailureRun, GroupPosition, GroupRef,
        Lease, QueueCounters, QueueId, SettleRefusal, SettleRequest, StoreResult,
    },
};

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn acquire(&self, req: &AcquireRequest) -> StoreResult<Vec<Lease>> {
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

    async fn counters(&self, queue: QueueId) -> StoreResult<QueueCounters> {
        self.reading(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name, value FROM counters WHERE queue_id = ?1").map_err(backend)?;
            let rows =
                stmt.query_map([queue], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))).map_err(backend)?;
            let mut c = QueueCounters::default();
            for row in rows {
                let (name, value) = row.map_err(backend)?;
                *counter_slot(&mut c, &name) = value;
            }
            Ok(c)
        })
        .await
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

    async fn register_consumer(&self, c: &ConsumerRecord) -> StoreResult<()> {
        let c = c.clone();
        let topics = serde_json::to_string(&c.topics).unwrap_or_else(|_| "[]".into());
        self.writing_relaxed(move |conn| {
            conn.execute(
                "INSERT INTO consumers (grp, consumer, topics, max_concurrency, rate_limit, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (grp, consumer) DO UPDATE SET topics = ?3, max_concurrency = ?4, rate_limit = ?5,
                    registered_at = ?6, tokens = NULL, tokens_at = NULL",
                params![c.group, c.consumer, topics, c.max_concurrency, c.rate_limit, c.registered_at.0],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn consumer(&self, group: &str, consumer: &str) -> StoreResult<Option<ConsumerRecord>> {
        let (group, consumer) = (group.to_owned(), consumer.to_owned());
        self.reading_now(|conn| {
            conn.query_row(
                "SELECT c.grp, c.consumer, c.topics, c.max_concurrency, c.rate_limit, c.registered_at,
                        (SELECT MAX(last_seen) FROM consumer_activity a WHERE a.grp = 'g:' || c.grp
                         AND a.consumer = c.consumer)
                 FROM consumers c WHERE c.grp = ?1 AND c.consumer = ?2",
                params![group, consumer],
                |r| {
                    let topics: String = r.get(2)?;
                    Ok(ConsumerRecord {
                        group: r.get(0)?,
                        consumer: r.get(1)?,
                        topics: serde_json::from_str(&topics).unwrap_or_default(),
                        max_concurrency: r.get(3)?,
                        rate_limit: r.get(4)?,
                        registered_at: Timestamp(r.get(5)?),
                        last_seen_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
    }

    async fn take_tokens(&self, group: &str, consumer: &str, want: u32, rate: u32, now: Timestamp) -> StoreResult<u32> {
        let (group, consumer) = (group.to_owned(), consumer.to_owned());
        self.writing_relaxed(move |conn| {
            let (tokens, at): (Option<f64>, Option<i64>) = conn
                .query_row(
                    "SELECT tokens, tokens_at FROM consumers WHERE grp = ?1 AND consumer = ?2",
                    params![group, consumer],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?
                .unwrap_or((None, None));
            // A token bucket holding one second of the rate, refilled continuously.
            let capacity = f64::from(rate);
            let elapsed = at.map_or(f64::INFINITY, |t| (now.0 - t).max(0) as f64 / 1000.0);
            let available = (tokens.unwrap_or(capacity) + elapsed * capacity).min(capacity);
            let taken = available.floor().min(f64::from(want)).max(0.0);
            conn.execute(
                "UPDATE consumers SET tokens = ?3, tokens_at = ?4 WHERE grp = ?1 AND consumer = ?2",
                params![group, consumer, available - taken, now.0],
            )
            .map_err(backend)?;
            Ok(taken as u32)
        })
        .await
    }

    async fn active_consumers(&self, queue: QueueId, name: &str, since: Timestamp) -> StoreResult<u64> {
        let name = name.to_owned();
        self.reading(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM (
                    SELECT grp, consumer FROM consumer_activity
                        WHERE queue_id = ?1 AND last_seen >= ?3 AND grp LIKE 'g:%'
                    UNION
                    SELECT 'g:' || grp, consumer FROM consumers, json_each(consumers.topics) WHERE json_each.value = ?2
                 )",
                params![queue, name, since.0],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
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
        let grp = group.key();
        self.writing_relaxed(move |conn| {
            for table in ["group_offsets", "deliveries", "consumer_activity", "attempts", "failure_runs"] {
                conn.execute(&format!("DELETE FROM {table} WHERE queue_id = ?1 AND grp = ?2"), params![queue, grp])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

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
}

/// Every group's delivery of one record. Pinned to `deliveries_by_record`: left to itself, SQLite
/// served `ORDER BY grp` from the primary key and read every delivery row of the queue.
pub(super) fn deliveries_of_record() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries INDEXED BY deliveries_by_record
         WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 ORDER BY grp"
    )
}

/// Every push attempt of one record, oldest first.
pub(super) const ATTEMPTS_OF_RECORD: &str = "SELECT grp, at, status, latency_ms, error FROM attempts
     INDEXED BY attempts_by_record WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 ORDER BY at, rowid";

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

fn counter_slot<'a>(c: &'a mut QueueCounters, name: &str) -> &'a mut u64 {
    match name {
        "consumed" => &mut c.consumed,
        "redelivered" => &mut c.redelivered,
        "acknowledged" => &mut c.acknowledged,
        "rejected" => &mut c.rejected,
        "requeued" => &mut c.requeued,
        "dead_lettered" => &mut c.dead_lettered,
        _ => &mut c.expired,
    }
}
