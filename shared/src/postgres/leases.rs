//! Delivery groups' state on PostgreSQL. Deliveries in flight live in `message_leases`, finished
//! ones move to the insert-only `message_settled`. Every race between instances is settled by
//! the database: an acquire takes due rows and each partition's fetch offset with
//! `FOR UPDATE SKIP LOCKED` (a second consumer takes other rows instead of waiting), and every
//! settlement is one conditional statement on the delivery it names.

use async_trait::async_trait;

use super::{
    PgStore, big,
    deliveries::{LEASE_COLUMNS, SETTLED_COLUMNS, delivery_from_row},
    finisher::Finish,
    unsigned,
};
use crate::{
    domain::Timestamp,
    ports::{
        AcquireRequest, Acquired, Delivery, DeliveryState, GroupPosition, GroupRef, LeaseStore, QueueId, SettleRefusal,
        SettleRequest, Settlement, StoreResult,
    },
};

#[async_trait]
impl LeaseStore for PgStore {
    async fn acquire(&self, req: &AcquireRequest) -> StoreResult<Acquired> {
        self.acquire_leases(req).await
    }

    async fn settle(&self, req: &SettleRequest) -> StoreResult<Result<Delivery, SettleRefusal>> {
        let (queue, grp, partition, offset) = (big(req.queue), req.group.key(), req.partition as i32, big(req.offset));
        let expect = req.expect_delivery.map(|n| n as i32);
        let now = req.now.0;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&queue, &grp, &partition, &offset, &expect];
        let finish = |state: DeliveryState| Finish {
            queue,
            grp: grp.clone(),
            partition,
            offset,
            expect,
            state: state.as_str(),
            at: now,
            reason: req.reason.clone(),
        };
        let changed = match req.settlement {
            Settlement::Acknowledge => self.finisher.ask(finish(DeliveryState::Acknowledged)).await?,
            Settlement::Drop { cause, dead_lettered } => {
                let state = if dead_lettered { DeliveryState::DeadLettered } else { cause.final_state() };
                self.finisher.ask(finish(state)).await?
            }
            Settlement::Release { at } => {
                let sql = format!(
                    "UPDATE message_leases SET state = 'available', until = $6, retry_count = retry_count + 1,
                        consumer = NULL, reason = COALESCE($7, reason)
                     WHERE {CURRENT} RETURNING {LEASE_COLUMNS}"
                );
                self.query_opt(&sql, &[key[0], key[1], key[2], key[3], key[4], &at.0, &req.reason])
                    .await?
                    .as_ref()
                    .map(delivery_from_row)
            }
            Settlement::Extend { until } => {
                let sql = format!(
                    "UPDATE message_leases SET until = $6, reason = COALESCE($8, reason)
                     WHERE {CURRENT} AND state = 'leased' AND until > $7 RETURNING {LEASE_COLUMNS}"
                );
                self.query_opt(&sql, &[key[0], key[1], key[2], key[3], key[4], &until.0, &now, &req.reason])
                    .await?
                    .as_ref()
                    .map(delivery_from_row)
            }
            Settlement::Hold { until } => {
                let sql = format!(
                    "UPDATE message_leases SET state = 'leased', until = $6, reason = COALESCE($7, reason)
                     WHERE {CURRENT} RETURNING {LEASE_COLUMNS}"
                );
                self.query_opt(&sql, &[key[0], key[1], key[2], key[3], key[4], &until.0, &req.reason])
                    .await?
                    .as_ref()
                    .map(delivery_from_row)
            }
        };
        if let Some(delivery) = changed {
            return Ok(Ok(delivery));
        }
        // Nothing changed: say why, from what the group holds now.
        let current = self.delivery(req.queue, &grp, req.partition, req.offset).await?;
        Ok(Err(match current {
            None => SettleRefusal::NotDelivered,
            Some(d) if d.state.is_final() => SettleRefusal::Finished(d),
            Some(d) if req.expect_delivery.is_some_and(|n| n != d.delivery_count) => SettleRefusal::Superseded(d),
            Some(d) => SettleRefusal::NotLeased(d),
        }))
    }

    async fn deliveries(&self, queue: QueueId, partition: u32, offset: u64) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM message_leases WHERE queue_id = $1 AND partition = $2 AND \"offset\" = $3
             UNION ALL
             SELECT {SETTLED_COLUMNS} FROM message_settled WHERE queue_id = $1 AND partition = $2 AND \"offset\" = $3
             ORDER BY 1"
        );
        let rows = self.query(&sql, &[&big(queue), &(partition as i32), &big(offset)]).await?;
        Ok(rows.iter().map(delivery_from_row).collect())
    }

    async fn groups(&self, queue: QueueId) -> StoreResult<Vec<GroupPosition>> {
        let rows = self
            .query(
                "SELECT o.grp, o.partition, o.fetch_offset,
                    COUNT(l.\"offset\") FILTER (WHERE l.state = 'leased'),
                    COUNT(l.\"offset\") FILTER (WHERE l.state = 'available'),
                    MIN(l.\"offset\")
                 FROM message_group_offsets o
                 LEFT JOIN message_leases l ON l.queue_id = o.queue_id AND l.grp = o.grp AND l.partition = o.partition
                 WHERE o.queue_id = $1
                 GROUP BY o.grp, o.partition, o.fetch_offset ORDER BY o.grp, o.partition",
                &[&big(queue)],
            )
            .await?;
        let mut out: Vec<GroupPosition> = Vec::new();
        for r in &rows {
            let Some(group) = GroupRef::from_key(r.get(0)) else { continue };
            if out.last().is_none_or(|g| g.group != group) {
                let empty =
                    GroupPosition { group, fetch_offsets: vec![], leased: 0, available: 0, oldest_open: vec![] };
                out.push(empty);
            }
            let Some(g) = out.last_mut() else { continue };
            let partition = r.get::<_, i32>(1) as u32;
            g.fetch_offsets.push((partition, unsigned(r.get(2))));
            g.leased += unsigned(r.get(3));
            g.available += unsigned(r.get(4));
            g.oldest_open.extend(r.get::<_, Option<i64>>(5).map(|o| (partition, unsigned(o))));
        }
        Ok(out)
    }

    async fn start_group(&self, queue: QueueId, group: &GroupRef, offsets: &[(u32, u64)]) -> StoreResult<()> {
        let parts: Vec<i32> = offsets.iter().map(|(p, _)| *p as i32).collect();
        let starts: Vec<i64> = offsets.iter().map(|(_, o)| big(*o)).collect();
        self.execute(
            "INSERT INTO message_group_offsets (queue_id, grp, partition, fetch_offset)
             SELECT $1::BIGINT, $2::TEXT, p, o FROM UNNEST($3::INT[], $4::BIGINT[]) AS t(p, o) ON CONFLICT DO NOTHING",
            &[&big(queue), &group.key(), &parts, &starts],
        )
        .await
        .map(drop)
    }

    async fn leased_by(&self, queue: QueueId, group: &GroupRef, consumer: &str, now: Timestamp) -> StoreResult<u64> {
        let row = self
            .query_opt(
                "SELECT COUNT(*) FROM message_leases
                 WHERE queue_id = $1 AND grp = $2 AND until > $4 AND state = 'leased' AND consumer = $3",
                &[&big(queue), &group.key(), &consumer, &now.0],
            )
            .await?;
        Ok(row.map_or(0, |r| unsigned(r.get(0))))
    }

    async fn forget_below(&self, queue: QueueId, starts: &[(u32, u64)]) -> StoreResult<()> {
        for (partition, start) in starts {
            for table in ["message_leases", "message_settled"] {
                let sql = format!("DELETE FROM {table} WHERE queue_id = $1 AND partition = $2 AND \"offset\" < $3");
                self.execute(&sql, &[&big(queue), &(*partition as i32), &big(*start)]).await?;
            }
        }
        Ok(())
    }

    async fn forget_group(&self, queue: QueueId, group: &GroupRef) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, Some(&group.key())).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&TABLES, queue, None).await
    }
}

/// The tables of delivery state, each keyed by queue and group.
const TABLES: [&str; 3] = ["message_group_offsets", "message_leases", "message_settled"];

/// The delivery a settlement names, while it is in flight and (when `$5` is set) still the
/// caller's delivery: a superseded or finished one matches nothing.
const CURRENT: &str = "queue_id = $1 AND grp = $2 AND partition = $3 AND \"offset\" = $4 \
                       AND ($5::INT IS NULL OR delivery_count = $5)";

impl PgStore {
    /// One group's delivery of a record, in flight or finished.
    async fn delivery(&self, queue: QueueId, grp: &str, partition: u32, offset: u64) -> StoreResult<Option<Delivery>> {
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM message_leases
                WHERE queue_id = $1 AND partition = $2 AND \"offset\" = $3 AND grp = $4
             UNION ALL
             SELECT {SETTLED_COLUMNS} FROM message_settled
                WHERE queue_id = $1 AND partition = $2 AND \"offset\" = $3 AND grp = $4"
        );
        let row = self.query_opt(&sql, &[&big(queue), &(partition as i32), &big(offset), &grp]).await?;
        Ok(row.as_ref().map(delivery_from_row))
    }

    /// Deletes a queue's rows (of one group, when given) from each table.
    pub(super) async fn delete_rows(&self, tables: &[&str], queue: QueueId, group: Option<&str>) -> StoreResult<()> {
        for table in tables {
            match group {
                Some(grp) => {
                    let sql = format!("DELETE FROM {table} WHERE queue_id = $1 AND grp = $2");
                    self.execute(&sql, &[&big(queue), &grp]).await?
                }
                None => self.execute(&format!("DELETE FROM {table} WHERE queue_id = $1"), &[&big(queue)]).await?,
            };
        }
        Ok(())
    }
}
