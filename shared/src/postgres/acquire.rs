//! Leasing on PostgreSQL, one statement per run (one round trip, its own transaction): due
//! deliveries (released ones whose time came, lapsed leases) are taken with `FOR UPDATE SKIP
//! LOCKED` and leased again; then the fetch offsets of as many partitions as the room needs are
//! locked the same way (ones another consumer is taking from are skipped), new offsets up to
//! the room left are leased, and the fetch offsets moved past them. When this store
//! holds the log too, the statement also reads the leased records.
//!
//! A grant commits without waiting for its WAL flush (`synchronous_commit` off for its own
//! transaction): if PostgreSQL crashes, grants of its last moments may be lost and their records
//! delivered again, which at-least-once delivery allows. An acknowledgement's flush comes after
//! its grant's in the WAL, so no acknowledgement outlives the grant it settles.

use super::{PgStore, big, log::record_from_row, unsigned};
use crate::ports::{AcquireRequest, Acquired, Lease, Record, StoreResult};

const ACQUIRE: &str = "
-- Evaluated once, as due_rows starts: this transaction commits without waiting for its flush.
WITH lazy_commit AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)),
due_rows AS MATERIALIZED (
    SELECT ctid AS row_id FROM message_leases
    WHERE queue_id = $1 AND grp = $2 AND until <= $3 AND partition = ANY($4) AND EXISTS (SELECT FROM lazy_commit)
    ORDER BY partition, \"offset\" LIMIT $5 FOR UPDATE SKIP LOCKED
),
due AS (
    UPDATE message_leases l SET state = 'leased', consumer = $6, until = $7,
        delivery_count = l.delivery_count + 1, last_delivered_at = $3,
        first_delivered_at = COALESCE(l.first_delivered_at, $3)
    WHERE l.ctid = ANY(ARRAY(SELECT row_id FROM due_rows))
    RETURNING l.partition, l.\"offset\", l.delivery_count, l.retry_count
),
ends AS (
    SELECT * FROM UNNEST($4::INT[], $8::BIGINT[], $9::BIGINT[]) WITH ORDINALITY AS r(partition, start_offset, end_offset, ord)
),
-- With $13: how many partitions fill the room, judged by fetch offsets as last committed.
wanted AS (
    SELECT partition FROM (
        SELECT g.partition, SUM(LEAST(GREATEST(r.end_offset - GREATEST(g.fetch_offset, r.start_offset), 0), $5))
            OVER (ORDER BY r.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM message_group_offsets g JOIN ends r ON g.partition = r.partition
        WHERE $13 AND g.queue_id = $1 AND g.grp = $2
            AND (r.end_offset > GREATEST(g.fetch_offset, r.start_offset) OR r.start_offset > g.fetch_offset)
    ) w WHERE COALESCE(before, 0) < $5 - (SELECT count(*) FROM due)
),
locked AS MATERIALIZED (
    SELECT g.partition, g.fetch_offset, r.ord, r.start_offset, r.end_offset
    FROM message_group_offsets g JOIN ends r ON g.partition = r.partition
    WHERE g.queue_id = $1 AND g.grp = $2
        AND (r.end_offset > GREATEST(g.fetch_offset, r.start_offset) OR r.start_offset > g.fetch_offset)
        AND ($10::BIGINT IS NULL OR NOT EXISTS (
            SELECT 1 FROM message_leases l WHERE l.queue_id = $1 AND l.grp = $2 AND l.partition = g.partition))
    ORDER BY r.ord LIMIT CASE WHEN $13 THEN (SELECT count(*) FROM wanted) ELSE $11 END
    FOR UPDATE OF g SKIP LOCKED
),
open AS (
    SELECT k.partition, k.ord, k.start_offset, k.fetch_offset,
        GREATEST(k.fetch_offset, k.start_offset) AS from_offset,
        LEAST(GREATEST(k.end_offset - GREATEST(k.fetch_offset, k.start_offset), 0), COALESCE($10::BIGINT, $5)) AS available
    FROM locked k
),
plan AS (
    SELECT o.*, $5 - (SELECT count(*) FROM due)
        - COALESCE(SUM(o.available) OVER (ORDER BY o.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS room
    FROM open o
),
taken AS (
    SELECT partition, start_offset, fetch_offset, from_offset, LEAST(available, room) AS take FROM plan WHERE room > 0
),
moved AS (
    UPDATE message_group_offsets g SET fetch_offset = t.from_offset + t.take FROM taken t
    WHERE g.queue_id = $1 AND g.grp = $2 AND g.partition = t.partition AND t.from_offset + t.take <> t.fetch_offset
),
fresh AS (
    INSERT INTO message_leases (queue_id, partition, \"offset\", grp, state, delivery_count, retry_count, consumer,
        until, first_delivered_at, last_delivered_at)
    SELECT $1, t.partition, s.o, $2, 'leased', 1, 0, $6, $7, $3, $3
    FROM taken t, generate_series(t.from_offset, t.from_offset + t.take - 1) AS s(o)
    RETURNING partition, \"offset\"
),
leased AS (
    SELECT partition, \"offset\", delivery_count, retry_count, 0::BIGINT AS kind FROM due
    UNION ALL SELECT partition, \"offset\", 1, 0, 1 FROM fresh
)
SELECT l.partition, l.\"offset\", l.delivery_count, l.retry_count, l.kind, m.key, m.routing_key, m.is_json,
    m.content, m.headers, m.priority, m.ttl_ms, m.persistent, m.published_at
FROM leased l LEFT JOIN LATERAL (
    SELECT * FROM message_messages m
    WHERE $12 AND m.queue_id = $1 AND m.partition = l.partition AND m.\"offset\" = l.\"offset\"
    -- The LIMIT keeps this a key lookup per leased row: without it the planner may flatten the
    -- subquery into a hash join that reads every record of the queue.
    LIMIT 1
) m ON true
UNION ALL SELECT partition, -1, 0, 0, start_offset - fetch_offset, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM taken WHERE start_offset > fetch_offset
UNION ALL SELECT r.p, -2, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM UNNEST($4::INT[]) AS r(p) WHERE NOT EXISTS (
    SELECT 1 FROM message_group_offsets g WHERE g.queue_id = $1 AND g.grp = $2 AND g.partition = r.p)";

/// Where a lease row's record columns start (those of `log::record_from_row`).
const RECORD_AT: usize = 5;

/// The last column of a lease's row: due again (0) or a new offset (1).
const FRESH: i64 = 1;
/// Marks a result row counting records retention removed before the group reached them.
const SKIPPED: i64 = -1;
/// Marks a result row naming a partition the group has no fetch offset for yet.
const UNSTARTED: i64 = -2;

/// What one run of the leasing statement took.
#[derive(Default)]
struct Pass {
    /// Due deliveries leased again, with their records when the statement read them.
    due: Vec<(Lease, Option<Record>)>,
    /// New offsets leased, in the order the partitions were asked for.
    fresh: Vec<(Lease, Option<Record>)>,
    skipped: u64,
    /// Partitions the group has no fetch offset for yet.
    unstarted: Vec<i32>,
    /// Whether it moved a partition's fetch offset.
    moved: bool,
}

impl PgStore {
    /// The first run of the statement locks as many partitions as the room needs (counted by
    /// the committed fetch offsets), the first unlocked ones in the requested order, so a
    /// consume usually takes one run and concurrent consumers of a backlog take different
    /// partitions. While room is left, later runs each take the first unlocked partition with
    /// records to take. Ordered delivery locks every partition in one run.
    pub(super) async fn acquire_leases(&self, req: &AcquireRequest) -> StoreResult<Acquired> {
        let mut got = Pass::default();
        let mut started = false;
        let mut fill = true;
        for _ in 0..req.partitions.len() + 2 {
            let room = req.max.saturating_sub((got.due.len() + got.fresh.len()) as u32);
            if room == 0 {
                break;
            }
            let pass = self.acquire_once(req, room, fill).await?;
            fill = false;
            got.due.extend(pass.due);
            got.fresh.extend(pass.fresh);
            got.skipped += pass.skipped;
            if !pass.unstarted.is_empty() && !started {
                // The group's first lease from these partitions: start them at their first record.
                self.start_partitions(req, &pass.unstarted).await?;
                started = true;
                fill = true;
                continue;
            }
            if !pass.moved || req.per_partition.is_some() {
                break;
            }
        }
        got.due.sort_by_key(|(l, _)| (l.partition, l.offset));
        got.due.extend(got.fresh);
        let (leases, records): (Vec<Lease>, Vec<Option<Record>>) = got.due.into_iter().unzip();
        Ok(Acquired { leases, skipped: got.skipped, records: self.log_here.then_some(records) })
    }

    /// Runs the leasing statement once for up to `max` records; with `fill`, locking as many
    /// partitions as fill `max`, else the first one with records to take.
    async fn acquire_once(&self, req: &AcquireRequest, max: u32, fill: bool) -> StoreResult<Pass> {
        let mut out = Pass::default();
        let until = req.now.plus_ms(req.lease_ms);
        let parts: Vec<i32> = req.partitions.iter().map(|p| p.partition as i32).collect();
        let starts: Vec<i64> = req.partitions.iter().map(|p| big(p.start_offset)).collect();
        let ends: Vec<i64> = req.partitions.iter().map(|p| big(p.end_offset)).collect();
        let per_partition = req.per_partition.map(i64::from);
        let fill = fill && per_partition.is_none();
        let partitions_locked: Option<i64> = if per_partition.is_some() || fill { None } else { Some(1) };
        let rows = self
            .query(
                ACQUIRE,
                &[
                    &big(req.queue),
                    &req.group.key(),
                    &req.now.0,
                    &parts,
                    &i64::from(max),
                    &req.consumer,
                    &until.0,
                    &starts,
                    &ends,
                    &per_partition,
                    &partitions_locked,
                    &self.log_here,
                    &fill,
                ],
            )
            .await?;
        for r in &rows {
            let (partition, offset): (i32, i64) = (r.get(0), r.get(1));
            match offset {
                SKIPPED => {
                    out.skipped += unsigned(r.get(4));
                    out.moved = true;
                }
                UNSTARTED => out.unstarted.push(partition),
                _ => {
                    let lease = Lease {
                        partition: partition as u32,
                        offset: unsigned(offset),
                        delivery_count: r.get::<_, i32>(2) as u32,
                        retry_count: r.get::<_, i32>(3) as u32,
                        until,
                    };
                    // The record columns are NULL when not read, or when retention removed it.
                    let record = r.get::<_, Option<bool>>(RECORD_AT + 2).map(|_| record_from_row(r, RECORD_AT));
                    if r.get::<_, i64>(4) == FRESH {
                        out.fresh.push((lease, record));
                        out.moved = true;
                    } else {
                        out.due.push((lease, record))
                    }
                }
            }
        }
        out.fresh.sort_by_key(|(l, _)| (parts.iter().position(|p| *p as u32 == l.partition), l.offset));
        Ok(out)
    }

    /// Starts the group's fetch offsets of `partitions` at their first record (if still unstarted).
    async fn start_partitions(&self, req: &AcquireRequest, partitions: &[i32]) -> StoreResult<()> {
        let starts: Vec<i64> = partitions
            .iter()
            .map(|p| req.partitions.iter().find(|i| i.partition as i32 == *p).map_or(0, |i| big(i.start_offset)))
            .collect();
        self.execute(
            "INSERT INTO message_group_offsets (queue_id, grp, partition, fetch_offset)
             SELECT $1::BIGINT, $2::TEXT, p, o FROM UNNEST($3::INT[], $4::BIGINT[]) AS t(p, o) ON CONFLICT DO NOTHING",
            &[&big(req.queue), &req.group.key(), &partitions, &starts],
        )
        .await
        .map(drop)
    }
}
