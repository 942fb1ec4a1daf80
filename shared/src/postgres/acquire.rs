//! Leasing on PostgreSQL in one statement (one round trip, its own transaction): due deliveries
//! (released ones whose time came, lapsed leases) are taken with `FOR UPDATE SKIP LOCKED` and
//! leased again; then each requested partition's fetch offset is locked the same way (one
//! another consumer is taking from is left to it), new offsets are shared out in the requested
//! order up to the room left, leased, and the fetch offsets moved past them.

use super::{PgStore, big, unsigned};
use crate::ports::{AcquireRequest, Acquired, Lease, StoreResult};

const ACQUIRE: &str = "
WITH due_rows AS MATERIALIZED (
    SELECT partition, \"offset\" FROM message_leases
    WHERE queue_id = $1 AND grp = $2 AND until <= $3 AND partition = ANY($4)
    ORDER BY partition, \"offset\" LIMIT $5 FOR UPDATE SKIP LOCKED
),
due AS (
    UPDATE message_leases l SET state = 'leased', consumer = $6, until = $7,
        delivery_count = l.delivery_count + 1, last_delivered_at = $3,
        first_delivered_at = COALESCE(l.first_delivered_at, $3)
    FROM due_rows d WHERE l.queue_id = $1 AND l.grp = $2 AND l.partition = d.partition AND l.\"offset\" = d.\"offset\"
    RETURNING l.partition, l.\"offset\", l.delivery_count, l.retry_count
),
locked AS MATERIALIZED (
    SELECT partition, fetch_offset FROM message_group_offsets
    WHERE queue_id = $1 AND grp = $2 AND partition = ANY($4)
    ORDER BY partition FOR UPDATE SKIP LOCKED
),
open AS (
    SELECT r.partition, r.ord, r.start_offset, k.fetch_offset,
        GREATEST(k.fetch_offset, r.start_offset) AS from_offset,
        LEAST(GREATEST(r.end_offset - GREATEST(k.fetch_offset, r.start_offset), 0), COALESCE($10::BIGINT, $5)) AS available
    FROM UNNEST($4::INT[], $8::BIGINT[], $9::BIGINT[]) WITH ORDINALITY AS r(partition, start_offset, end_offset, ord)
    JOIN locked k ON k.partition = r.partition
    WHERE $10::BIGINT IS NULL OR NOT EXISTS (
        SELECT 1 FROM message_leases l WHERE l.queue_id = $1 AND l.grp = $2 AND l.partition = r.partition)
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
)
SELECT partition, \"offset\", delivery_count, retry_count, 0::BIGINT FROM due
UNION ALL SELECT partition, \"offset\", 1, 0, 1 FROM fresh
UNION ALL SELECT partition, -1, 0, 0, start_offset - fetch_offset FROM taken WHERE start_offset > fetch_offset
UNION ALL SELECT r.p, -2, 0, 0, 0 FROM UNNEST($4::INT[]) AS r(p) WHERE NOT EXISTS (
    SELECT 1 FROM message_group_offsets g WHERE g.queue_id = $1 AND g.grp = $2 AND g.partition = r.p)";

/// The last column of a lease's row: due again (0) or a new offset (1).
const FRESH: i64 = 1;
/// Marks a result row counting records retention removed before the group reached them.
const SKIPPED: i64 = -1;
/// Marks a result row naming a partition the group has no fetch offset for yet.
const UNSTARTED: i64 = -2;

impl PgStore {
    pub(super) async fn acquire_leases(&self, req: &AcquireRequest) -> StoreResult<Acquired> {
        let mut acquired = self.acquire_once(req, req.max).await?;
        if !acquired.1.is_empty() {
            // The group's first lease from these partitions: start them at their first record, then take the rest.
            self.start_partitions(req, &acquired.1).await?;
            let room = req.max.saturating_sub(acquired.0.leases.len() as u32);
            let more = self.acquire_once(req, room).await?.0;
            acquired.0.leases.extend(more.leases);
            acquired.0.skipped += more.skipped;
        }
        Ok(acquired.0)
    }

    /// Leases up to `max`; answers the leases and the partitions the group has not started.
    async fn acquire_once(&self, req: &AcquireRequest, max: u32) -> StoreResult<(Acquired, Vec<i32>)> {
        let mut out = (Acquired::default(), Vec::new());
        let mut fresh = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let until = req.now.plus_ms(req.lease_ms);
        let parts: Vec<i32> = req.partitions.iter().map(|p| p.partition as i32).collect();
        let starts: Vec<i64> = req.partitions.iter().map(|p| big(p.start_offset)).collect();
        let ends: Vec<i64> = req.partitions.iter().map(|p| big(p.end_offset)).collect();
        let per_partition = req.per_partition.map(i64::from);
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
                ],
            )
            .await?;
        for r in &rows {
            let (partition, offset): (i32, i64) = (r.get(0), r.get(1));
            match offset {
                SKIPPED => out.0.skipped += unsigned(r.get(4)),
                UNSTARTED => out.1.push(partition),
                _ => {
                    let lease = Lease {
                        partition: partition as u32,
                        offset: unsigned(offset),
                        delivery_count: r.get::<_, i32>(2) as u32,
                        retry_count: r.get::<_, i32>(3) as u32,
                        until,
                    };
                    if r.get::<_, i64>(4) == FRESH { fresh.push(lease) } else { out.0.leases.push(lease) }
                }
            }
        }
        // Due deliveries first, in key order; then new offsets in the order the partitions were asked for.
        out.0.leases.sort_by_key(|l| (l.partition, l.offset));
        fresh.sort_by_key(|l| (parts.iter().position(|p| *p as u32 == l.partition), l.offset));
        out.0.leases.extend(fresh);
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
