//! Delivery state on SQLite. Each call is one transaction of the writer, so
//! the checks and changes of one call cannot interleave with another's.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::Timestamp,
    ports::{
        AcquireRequest, AttemptRecord, ConsumerRecord, Delivery, DeliveryState, DeliveryStore, DropCause, FailureRun,
        GroupPosition, GroupRef, Lease, QueueCounters, QueueId, SettleRefusal, SettleRequest, Settlement, StoreResult,
    },
};

const DELIVERY_COLUMNS: &str = "grp, partition, offset, state, delivery_count, retry_count, consumer, until, \
                                first_delivered_at, last_delivered_at, finished_at, reason";

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
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 \
                 ORDER BY grp"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
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
                    SELECT grp, consumer FROM consumer_activity WHERE queue_id = ?1 AND last_seen >= ?3
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
            let mut stmt = conn
                .prepare_cached(
                    "SELECT grp, at, status, latency_ms, error FROM attempts
                     WHERE queue_id = ?1 AND partition = ?2 AND offset = ?3 ORDER BY at, rowid",
                )
                .map_err(backend)?;
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

fn acquire(conn: &Connection, req: &AcquireRequest) -> StoreResult<Vec<Lease>> {
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
        if fetch < p.start_offset {
            bump(conn, queue, "expired", p.start_offset - fetch)?;
        }
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
    bump(conn, queue, "consumed", leases.len() as u64)?;
    bump(conn, queue, "redelivered", leases.iter().filter(|l| l.delivery_count > 1).count() as u64)?;
    conn.prepare_cached(
        "INSERT INTO consumer_activity (queue_id, grp, consumer, last_seen) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue_id, grp, consumer) DO UPDATE SET last_seen = ?4",
    )
    .and_then(|mut s| s.execute(params![queue, grp, req.consumer, now]))
    .map_err(backend)?;
    Ok(leases)
}

fn settle(conn: &Connection, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>> {
    let grp = req.group.key();
    let Some(current) = load(conn, req.queue, &grp, req.partition, req.offset)? else {
        return Ok(Err(SettleRefusal::NotDelivered));
    };
    if current.state.is_final() {
        let repeat_ack = current.state == DeliveryState::Acknowledged && req.settlement == Settlement::Acknowledge;
        return Ok(if repeat_ack { Ok(current) } else { Err(SettleRefusal::Finished(current)) });
    }
    if req.expect_delivery.is_some_and(|n| n != current.delivery_count) {
        return Ok(Err(SettleRefusal::Superseded(current)));
    }
    let now = req.now.0;
    let (state, until, retry, finished, counters): (DeliveryState, Option<i64>, u32, Option<i64>, Vec<&str>) =
        match req.settlement {
            Settlement::Acknowledge => (DeliveryState::Acknowledged, None, 0, Some(now), vec!["acknowledged"]),
            Settlement::Release { at } => (DeliveryState::Available, Some(at.0), 1, None, vec!["requeued"]),
            Settlement::Extend { until } => {
                if current.state != DeliveryState::Leased || current.until.is_none_or(|u| u.0 <= now) {
                    return Ok(Err(SettleRefusal::NotLeased(current)));
                }
                (DeliveryState::Leased, Some(until.0), 0, None, vec![])
            }
            Settlement::Hold { until } => (DeliveryState::Leased, Some(until.0), 0, None, vec![]),
            Settlement::Drop { cause, dead_lettered } => {
                let mut counters = match cause {
                    DropCause::Rejected => vec!["rejected"],
                    DropCause::Expired => vec!["expired"],
                    DropCause::DeliveryLimit => vec![],
                };
                let state = if dead_lettered {
                    counters.push("dead_lettered");
                    DeliveryState::DeadLettered
                } else {
                    cause.final_state()
                };
                (state, None, 0, Some(now), counters)
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
    for name in counters {
        bump(conn, req.queue, name, 1)?;
    }
    let after = load(conn, req.queue, &grp, req.partition, req.offset)?;
    Ok(Ok(after.expect("the row was just updated")))
}

fn groups(conn: &Connection, queue: QueueId) -> StoreResult<Vec<GroupPosition>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT grp, partition, fetch_offset,
                (SELECT COUNT(*) FROM deliveries d WHERE d.queue_id = o.queue_id AND d.grp = o.grp
                 AND d.partition = o.partition AND d.state = 'leased'),
                (SELECT COUNT(*) FROM deliveries d WHERE d.queue_id = o.queue_id AND d.grp = o.grp
                 AND d.partition = o.partition AND d.state = 'available')
             FROM group_offsets o WHERE queue_id = ?1 ORDER BY grp, partition",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([queue], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, u64>(3)?, r.get::<_, u64>(4)?))
        })
        .map_err(backend)?;
    let mut out: Vec<GroupPosition> = Vec::new();
    for row in rows {
        let (key, partition, fetch, leased, available) = row.map_err(backend)?;
        let Some(group) = GroupRef::from_key(&key) else { continue };
        match out.last_mut() {
            Some(g) if g.group == group => {
                g.fetch_offsets.push((partition, fetch));
                g.leased += leased;
                g.available += available;
            }
            _ => out.push(GroupPosition { group, fetch_offsets: vec![(partition, fetch)], leased, available }),
        }
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

fn bump(conn: &Connection, queue: QueueId, name: &str, by: u64) -> StoreResult<()> {
    if by == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO counters (queue_id, name, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue_id, name) DO UPDATE SET value = value + ?3",
    )
    .and_then(|mut s| s.execute(params![queue, name, by]))
    .map_err(backend)?;
    Ok(())
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

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
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
