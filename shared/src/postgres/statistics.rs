//! Time buckets of figures on PostgreSQL (`message_metrics`): a flush adds each bucket to its
//! stored row under that row's lock, so instances flushing the same bucket at once both count.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::{PgStore, big, errors::pg, unsigned};
use crate::{
    domain::{Figures, Timestamp},
    error::StoreError,
    ports::{QueueId, Statistics, StatsBucket, StoreResult},
};

#[async_trait]
impl Statistics for PgStore {
    async fn merge_buckets(&self, mut buckets: Vec<StatsBucket>) -> StoreResult<()> {
        if buckets.is_empty() {
            return Ok(());
        }
        // In key order, so two instances' flushes lock rows in the same order.
        buckets.sort_by_key(|b| (b.queue, b.width_ms, b.start));
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        for bucket in &buckets {
            merge_into(&tx, bucket).await?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn buckets(&self, queue: Option<QueueId>, from: Timestamp, to: Timestamp) -> StoreResult<Vec<StatsBucket>> {
        let rows = self
            .query(
                "SELECT queue_id, width_ms, start, figures FROM message_metrics
                 WHERE start >= $1 AND start < $2 AND ($3::BIGINT IS NULL OR queue_id = $3)",
                &[&from.0, &to.0, &queue.map(big)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StatsBucket {
                    queue: unsigned(r.get(0)),
                    width_ms: unsigned(r.get(1)),
                    start: Timestamp(r.get(2)),
                    figures: decode(r.get(3))?,
                })
            })
            .collect()
    }

    async fn roll_up(&self, width_ms: u64, into_ms: u64, before: Timestamp) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let rows = tx
            .query(
                "DELETE FROM message_metrics WHERE width_ms = $1 AND start < $2 RETURNING queue_id, start, figures",
                &[&big(width_ms), &before.0],
            )
            .await
            .map_err(pg)?;
        let mut merged: BTreeMap<(QueueId, i64), Figures> = BTreeMap::new();
        for r in &rows {
            let start: i64 = r.get(1);
            let coarse = start - start.rem_euclid(big(into_ms).max(1));
            merged.entry((unsigned(r.get(0)), coarse)).or_default().merge(&decode(r.get(2))?);
        }
        for ((queue, start), figures) in merged {
            merge_into(&tx, &StatsBucket { queue, start: Timestamp(start), width_ms: into_ms, figures }).await?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(rows.len() as u64)
    }

    async fn expire_buckets(&self, before: Timestamp) -> StoreResult<u64> {
        self.execute("DELETE FROM message_metrics WHERE start < $1", &[&before.0]).await
    }
}

/// Adds a bucket's figures to its stored row (locked while it is read and written), or stores it.
async fn merge_into(tx: &Transaction<'_>, bucket: &StatsBucket) -> StoreResult<()> {
    let (queue, width, start) = (big(bucket.queue), big(bucket.width_ms), bucket.start.0);
    let insert = tx
        .prepare_cached(
            "INSERT INTO message_metrics (queue_id, width_ms, start, figures) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    if tx.execute(&insert, &[&queue, &width, &start, &bucket.figures.encode()]).await.map_err(pg)? > 0 {
        return Ok(());
    }
    let lock = tx
        .prepare_cached(
            "SELECT figures FROM message_metrics WHERE queue_id = $1 AND width_ms = $2 AND start = $3 FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    let stored = tx.query_one(&lock, &[&queue, &width, &start]).await.map_err(pg)?;
    let mut figures = decode(stored.get(0))?;
    figures.merge(&bucket.figures);
    let update = tx
        .prepare_cached("UPDATE message_metrics SET figures = $4 WHERE queue_id = $1 AND width_ms = $2 AND start = $3")
        .await
        .map_err(pg)?;
    tx.execute(&update, &[&queue, &width, &start, &figures.encode()]).await.map_err(pg)?;
    Ok(())
}

fn decode(bytes: &[u8]) -> StoreResult<Figures> {
    Figures::decode(bytes).ok_or_else(|| StoreError::Failed("a stored statistics bucket does not decode".into()))
}
