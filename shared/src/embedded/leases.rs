//! Leasing and settling on SQLite: the conditional writes behind acquire and
//! settle, each run inside one transaction of the writer. Counters are the
//! caller's (`QueueStats`), so nothing here counts.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::writer::backend;
use crate::{
    domain::Timestamp,
    ports::{
        AcquireRequest, Acquired, Delivery, DeliveryState, GroupPosition, GroupRef, Lease, QueueId, SettleRefusal,
        SettleRequest, Settlement, StoreResult,
    },
};

pub(super) fn acquire(conn: &Connection, req: &AcquireRequest) -> StoreResult<Acquired> {
    let (queue, grp, now) = (req.queue, req.group.key(), req.now.0);
    // Lapsed leases become available at once; `until` keeps the lapse time.
    conn.prepare_cached(
        "UPDATE deliveries SET state = 'available', consumer = NULL
         WHERE queue_id = ?1 AND grp = ?2 AND state = 'leased' AND until <= ?3",
    )
    .and_then(|mut s| s.execute(params![queue, grp, now]))
    .map_err(backend)?;
    // Due redeliveries of the requested partitions come first.
    let mut picked: Vec<(u32, u64)> = conn
        .prepare_cached(
            "SELECT partition, offset FROM deliveries
             WHERE queue_id = ?1 AND grp = ?2 AND state = 'available' AND until <= ?3
             ORDER BY partition, offset",
        )
        .and_then(|mut s| {
            s.query_map(params![queue, grp, now], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, u64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(backend)?
        .into_iter()
        .filter(|(p, _)| req.partitions.iter().any(|info| info.partition == *p))
        .take(req.max as usize)
        .collect();
    let mut skipped = 0;
    for p in &req.partitions {
        let room =
            u64::from(req.max).saturating_sub(picked.len() as u64).min(req.per_partition.map_or(u64::MAX, u64::from));
        if room == 0 {
            break;
        }
        if req.per_partition.is_some() && has_open(conn, queue, &grp, p.partition)? {
            // Ordered delivery: a partition with a message in flight or awaiting its retry waits.
            continue;
        }
        let fetch = fetch_offset(conn, queue, &grp, p.partition)?.unwrap_or(p.start_offset);
        // Records removed by retention before this group reached them are gone for it.
        skipped += p.start_offset.saturating_sub(fetch);
        let from = fetch.max(p.start_offset);
        let to = p.end_offset.min(from + room).max(from);
        for offset in from..to {
            conn.prepare_cached(
                "INSERT INTO deliveries (queue_id, grp, partition, offset, state) VALUES (?1, ?2, ?3, ?4, 'available')",
            )
            .and_then(|mut s| s.execute(params![queue, grp, p.partition, offset]))
            .map_err(backend)?;
            picked.push((p.partition, offset));
        }
        if to != fetch {
            conn.prepare_cached(
                "INSERT INTO group_offsets (queue_id, grp, partition, fetch_offset) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (queue_id, grp, partition) DO UPDATE SET fetch_offset = ?4",
            )
            .and_then(|mut s| s.execute(params![queue, grp, p.partition, to]))
            .map_err(backend)?;
        }
    }
    let until = req.now.plus_ms(req.lease_ms);
    let mut leases = Vec::with_capacity(picked.len());
    for (partition, offset) in picked {
        let (delivery_count, retry_count) = conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'leased', consumer = ?5, until = ?6, delivery_count = delivery_count + 1,
                    first_delivered_at = COALESCE(first_delivered_at, ?7), last_delivered_at = ?7
                 WHERE queue_id = ?1 AND grp = ?2 AND partition = ?3 AND offset = ?4
                 RETURNING delivery_count, retry_count",
            )
            .and_then(|mut s| {
                s.query_row(params![queue, grp, partition, offset, req.consumer, until.0, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .map_err(backend)?;
        leases.push(Lease { partition, offset, delivery_count, retry_count, until });
    }
    Ok(Acquired { leases, skipped, records: None })
}

pub(super) fn settle(conn: &Connection, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>> {
    let grp = req.group.key();
    let Some(current) = load(conn, req.queue, &grp, req.partition, req.offset)? else {
        return Ok(Err(SettleRefusal::NotDelivered));
    };
    if current.state.is_final() {
        return Ok(Err(SettleRefusal::Finished(current)));
    }
    if req.expect_delivery.is_some_and(|n| n != current.delivery_count) {
        return Ok(Err(SettleRefusal::Superseded(current)));
    }
    let now = req.now.0;
    let (state, until, retry, finished): (DeliveryState, Option<i64>, u32, Option<i64>) = match req.settlement {
        Settlement::Acknowledge => (DeliveryState::Acknowledged, None, 0, Some(now)),
        Settlement::Release { at } => (DeliveryState::Available, Some(at.0), 1, None),
        Settlement::Extend { until } => {
            if current.state != DeliveryState::Leased || current.until.is_none_or(|u| u.0 <= now) {
                return Ok(Err(SettleRefusal::NotLeased(current)));
            }
            (DeliveryState::Leased, Some(until.0), 0, None)
        }
        Settlement::Hold { until } => (DeliveryState::Leased, Some(until.0), 0, None),
        Settlement::Drop { cause, dead_lettered } => {
            let state = if dead_lettered { DeliveryState::DeadLettered } else { cause.final_state() };
            (state, None, 0, Some(now))
        }
    };
    let keep_consumer = state == DeliveryState::Leased;
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?5, until = ?6, retry_count = retry_count + ?7, finished_at = ?8,
            reason = COALESCE(?9, reason), consumer = CASE WHEN ?10 THEN consumer ELSE NULL END
         WHERE queue_id = ?1 AND grp = ?2 AND partition = ?3 AND offset = ?4",
    )
    .and_then(|mut s| {
        s.execute(params![
            req.queue,
            grp,
            req.partition,
            req.offset,
            state.as_str(),
            until,
            retry,
            finished,
            req.reason,
            keep_consumer
        ])
    })
    .map_err(backend)?;
    let after = load(conn, req.queue, &grp, req.partition, req.offset)?;
    Ok(Ok(after.expect("the row was just updated")))
}

pub(super) fn groups(conn: &Connection, queue: QueueId) -> StoreResult<Vec<GroupPosition>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT grp, partition, fetch_offset,
                (SELECT COUNT(*) FROM deliveries d WHERE d.queue_id = o.queue_id AND d.grp = o.grp
                 AND d.partition = o.partition AND d.state = 'leased'),
                (SELECT COUNT(*) FROM deliveries d WHERE d.queue_id = o.queue_id AND d.grp = o.grp
                 AND d.partition = o.partition AND d.state = 'available'),
                (SELECT MIN(offset) FROM deliveries d WHERE d.queue_id = o.queue_id AND d.grp = o.grp
                 AND d.partition = o.partition AND d.state IN ('leased', 'available'))
             FROM group_offsets o WHERE queue_id = ?1 ORDER BY grp, partition",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([queue], |r| {
            let counts = (r.get::<_, u64>(3)?, r.get::<_, u64>(4)?, r.get::<_, Option<u64>>(5)?);
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, u64>(2)?, counts))
        })
        .map_err(backend)?;
    let mut out: Vec<GroupPosition> = Vec::new();
    for row in rows {
        let (key, partition, fetch, (leased, available, oldest)) = row.map_err(backend)?;
        let Some(group) = GroupRef::from_key(&key) else { continue };
        if out.last().is_none_or(|g| g.group != group) {
            let empty = GroupPosition { group, fetch_offsets: vec![], leased: 0, available: 0, oldest_open: vec![] };
            out.push(empty);
        }
        let Some(g) = out.last_mut() else { continue };
        g.fetch_offsets.push((partition, fetch));
        g.leased += leased;
        g.available += available;
        g.oldest_open.extend(oldest.map(|offset| (partition, offset)));
    }
    Ok(out)
}

fn has_open(conn: &Connection, queue: QueueId, grp: &str, partition: u32) -> StoreResult<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM deliveries WHERE queue_id = ?1 AND grp = ?2 AND partition = ?3
         AND state IN ('leased', 'available') LIMIT 1",
    )
    .and_then(|mut s| s.query_row(params![queue, grp, partition], |_| Ok(())).optional())
    .map(|found| found.is_some())
    .map_err(backend)
}

fn fetch_offset(conn: &Connection, queue: QueueId, grp: &str, partition: u32) -> StoreResult<Option<u64>> {
    conn.prepare_cached("SELECT fetch_offset FROM group_offsets WHERE queue_id = ?1 AND grp = ?2 AND partition = ?3")
        .and_then(|mut s| s.query_row(params![queue, grp, partition], |r| r.get(0)).optional())
        .map_err(backend)
}

fn load(conn: &Connection, queue: QueueId, grp: &str, partition: u32, offset: u64) -> StoreResult<Option<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE queue_id = ?1 AND grp = ?2 AND partition = ?3 AND offset = ?4"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![queue, grp, partition, offset], delivery_from_row).optional())
        .map_err(backend)
}

pub(super) const DELIVERY_COLUMNS: &str = "grp, partition, offset, state, delivery_count, retry_count, consumer, until, \
                                first_delivered_at, last_delivered_at, finished_at, reason";

pub(super) fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let key: String = r.get(0)?;
    let state: String = r.get(3)?;
    let ts = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(Timestamp));
    Ok(Delivery {
        group: GroupRef::from_key(&key).unwrap_or(GroupRef::Consumers(key)),
        partition: r.get(1)?,
        offset: r.get(2)?,
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Available),
        delivery_count: r.get(4)?,
        retry_count: r.get(5)?,
        consumer: r.get(6)?,
        until: ts(7)?,
        first_delivered_at: ts(8)?,
        last_delivered_at: ts(9)?,
        finished_at: ts(10)?,
        reason: r.get(11)?,
    })
}
