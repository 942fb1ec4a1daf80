//! Queue counters on PostgreSQL. Additions gather in this process and are written every
//! [`FLUSH_EVERY`] into one of [`STRIPES`] rows per counter, so instances adding to one queue's
//! counters seldom wait for each other's row locks; a read sums the rows and adds what this
//! process has not written yet. An addition not yet written is lost if the process dies.

use std::{
    collections::HashMap,
    sync::{Mutex, Weak},
    time::Duration,
};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::RwLock;

use super::{PgStore, big, errors::no_connection, errors::pg};
use crate::ports::{CounterDelta, QueueCounters, QueueId, QueueStats, StoreResult};

/// How often additions are written.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Rows per queue and counter.
const STRIPES: u16 = 16;

/// Additions not written yet, and a gate a read holds so it never misses a flush in flight.
#[derive(Debug, Default)]
pub(super) struct Pending {
    deltas: Mutex<HashMap<QueueId, CounterDelta>>,
    flushing: RwLock<()>,
}

impl Pending {
    fn add(&self, queue: QueueId, delta: &CounterDelta) {
        let mut deltas = self.deltas.lock().unwrap_or_else(|p| p.into_inner());
        let sum = deltas.entry(queue).or_default();
        for ((_, total), (_, by)) in slots(sum).into_iter().zip(delta.named()) {
            *total += by;
        }
    }

    fn of(&self, queue: QueueId) -> CounterDelta {
        self.deltas.lock().unwrap_or_else(|p| p.into_inner()).get(&queue).copied().unwrap_or_default()
    }

    /// Writes every pending addition; on failure they wait for the next flush.
    async fn flush(&self, pool: &Pool) -> StoreResult<()> {
        let _gate = self.flushing.write().await;
        let taken = std::mem::take(&mut *self.deltas.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let written = write(pool, &taken).await;
        if written.is_err() {
            for (queue, delta) in &taken {
                self.add(*queue, delta);
            }
        }
        written
    }
}

fn slots(d: &mut CounterDelta) -> [(&'static str, &mut i64); 7] {
    [
        ("consumed", &mut d.consumed),
        ("redelivered", &mut d.redelivered),
        ("acknowledged", &mut d.acknowledged),
        ("rejected", &mut d.rejected),
        ("requeued", &mut d.requeued),
        ("dead_lettered", &mut d.dead_lettered),
        ("expired", &mut d.expired),
    ]
}

async fn write(pool: &Pool, deltas: &HashMap<QueueId, CounterDelta>) -> StoreResult<()> {
    let (mut queues, mut names, mut values) = (vec![], vec![], vec![]);
    for (queue, delta) in deltas {
        for (name, by) in delta.named().into_iter().filter(|(_, by)| *by != 0) {
            queues.push(big(*queue));
            names.push(name);
            values.push(by);
        }
    }
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let stripe = (u16::from_le_bytes(random) % STRIPES) as i16;
    let client = pool.get().await.map_err(no_connection)?;
    let statement = client
        .prepare_cached(
            "INSERT INTO message_counters AS c (queue_id, name, stripe, value)
             SELECT q, n, $4::SMALLINT, v FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[]) AS t(q, n, v)
             ORDER BY q, n
             ON CONFLICT (queue_id, name, stripe) DO UPDATE SET value = c.value + excluded.value",
        )
        .await
        .map_err(pg)?;
    client.execute(&statement, &[&queues, &names, &values, &stripe]).await.map_err(pg)?;
    Ok(())
}

/// Writes pending additions every [`FLUSH_EVERY`] until the store is dropped.
pub(super) fn spawn_flusher(pool: Pool, pending: Weak<Pending>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FLUSH_EVERY).await;
            let Some(pending) = pending.upgrade() else { return };
            if let Err(e) = pending.flush(&pool).await {
                tracing::warn!("queue counters not written yet: {e}");
            }
        }
    });
}

#[async_trait]
impl QueueStats for PgStore {
    async fn add(&self, queue: QueueId, delta: &CounterDelta) -> StoreResult<()> {
        if !delta.is_zero() {
            self.counters.add(queue, delta);
        }
        Ok(())
    }

    async fn counters(&self, queue: QueueId) -> StoreResult<QueueCounters> {
        let _gate = self.counters.flushing.read().await;
        let rows = self
            .query(
                "SELECT name, SUM(value)::BIGINT FROM message_counters WHERE queue_id = $1 GROUP BY name",
                &[&big(queue)],
            )
            .await?;
        let mut totals: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for (name, by) in self.counters.of(queue).named() {
            *totals.entry(name.to_owned()).or_default() += by;
        }
        let mut counters = QueueCounters::default();
        for (name, value) in totals {
            if let Some(slot) = counters.slot(&name) {
                *slot = value.max(0) as u64;
            }
        }
        Ok(counters)
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        let _gate = self.counters.flushing.write().await;
        self.counters.deltas.lock().unwrap_or_else(|p| p.into_inner()).remove(&queue);
        self.delete_rows(&["message_counters", "message_metrics"], queue, None).await
    }
}
