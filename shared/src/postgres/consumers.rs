//! Registered consumers, their activity, and rate buckets on PostgreSQL. A rate bucket is
//! read and written under its row lock, so instances spending one consumer's tokens take turns.

use async_trait::async_trait;

use super::{PgStore, big, errors::pg, unsigned};
use crate::{
    domain::Timestamp,
    ports::{ConsumerRecord, ConsumerRegistry, QueueId, RateLimiter, StoreResult},
};

#[async_trait]
impl ConsumerRegistry for PgStore {
    async fn register_consumer(&self, c: &ConsumerRecord) -> StoreResult<()> {
        let (max, rate) = (c.max_concurrency.map(|n| n as i32), c.rate_limit.map(|n| n as i32));
        self.execute(
            "INSERT INTO message_consumers (grp, consumer, topics, max_concurrency, rate_limit, registered_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (grp, consumer) DO UPDATE SET topics = $3, max_concurrency = $4, rate_limit = $5,
                registered_at = $6",
            &[&c.group, &c.consumer, &c.topics, &max, &rate, &c.registered_at.0],
        )
        .await
        .map(drop)
    }

    async fn consumer(&self, group: &str, consumer: &str) -> StoreResult<Option<ConsumerRecord>> {
        let row = self
            .query_opt(
                "SELECT c.grp, c.consumer, c.topics, c.max_concurrency, c.rate_limit, c.registered_at,
                    (SELECT MAX(last_seen) FROM message_consumer_activity a WHERE a.grp = 'g:' || c.grp
                     AND a.consumer = c.consumer)
                 FROM message_consumers c WHERE c.grp = $1 AND c.consumer = $2",
                &[&group, &consumer],
            )
            .await?;
        Ok(row.map(|r| ConsumerRecord {
            group: r.get(0),
            consumer: r.get(1),
            topics: r.get(2),
            max_concurrency: r.get::<_, Option<i32>>(3).map(|n| n.max(0) as u32),
            rate_limit: r.get::<_, Option<i32>>(4).map(|n| n.max(0) as u32),
            registered_at: Timestamp(r.get(5)),
            last_seen_at: r.get::<_, Option<i64>>(6).map(Timestamp),
        }))
    }

    async fn seen(&self, queue: QueueId, group: &str, consumer: &str, now: Timestamp) -> StoreResult<()> {
        self.execute(
            "INSERT INTO message_consumer_activity (queue_id, grp, consumer, last_seen) VALUES ($1, $2, $3, $4)
             ON CONFLICT (queue_id, grp, consumer) DO UPDATE
                SET last_seen = GREATEST(message_consumer_activity.last_seen, $4)
                WHERE message_consumer_activity.last_seen < $4",
            &[&big(queue), &format!("g:{group}"), &consumer, &now.0],
        )
        .await
        .map(drop)
    }

    async fn active_consumers(&self, queue: QueueId, name: &str, since: Timestamp) -> StoreResult<u64> {
        let row = self
            .query_opt(
                "SELECT COUNT(*) FROM (
                    SELECT grp, consumer FROM message_consumer_activity
                        WHERE queue_id = $1 AND last_seen >= $3 AND grp LIKE 'g:%'
                    UNION
                    SELECT 'g:' || grp, consumer FROM message_consumers WHERE $2 = ANY(topics)
                 ) c",
                &[&big(queue), &name, &since.0],
            )
            .await?;
        Ok(row.map_or(0, |r| unsigned(r.get(0))))
    }

    async fn forget_group(&self, queue: QueueId, group: &str) -> StoreResult<()> {
        self.delete_rows(&["message_consumer_activity"], queue, Some(&format!("g:{group}"))).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&["message_consumer_activity"], queue, None).await
    }
}

#[async_trait]
impl RateLimiter for PgStore {
    async fn take_tokens(&self, group: &str, consumer: &str, want: u32, rate: u32, now: Timestamp) -> StoreResult<u32> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let capacity = f64::from(rate);
        let make = tx
            .prepare_cached(
                "INSERT INTO message_rate_buckets (grp, consumer, tokens, tokens_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg)?;
        tx.execute(&make, &[&group, &consumer, &capacity, &now.0]).await.map_err(pg)?;
        let lock = tx
            .prepare_cached(
                "SELECT tokens, tokens_at FROM message_rate_buckets WHERE grp = $1 AND consumer = $2 FOR UPDATE",
            )
            .await
            .map_err(pg)?;
        let row = tx.query_one(&lock, &[&group, &consumer]).await.map_err(pg)?;
        let (tokens, at): (f64, i64) = (row.get(0), row.get(1));
        let elapsed = (now.0 - at).max(0) as f64 / 1000.0;
        let available = (tokens + elapsed * capacity).min(capacity);
        let taken = available.floor().min(f64::from(want)).max(0.0);
        let spend = tx
            .prepare_cached(
                "UPDATE message_rate_buckets SET tokens = $3, tokens_at = GREATEST(tokens_at, $4)
                 WHERE grp = $1 AND consumer = $2",
            )
            .await
            .map_err(pg)?;
        tx.execute(&spend, &[&group, &consumer, &(available - taken), &now.0]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(taken as u32)
    }

    async fn reset(&self, group: &str, consumer: &str) -> StoreResult<()> {
        self.execute("DELETE FROM message_rate_buckets WHERE grp = $1 AND consumer = $2", &[&group, &consumer])
            .await
            .map(drop)
    }
}
