//! Registered consumers, their activity, and rate buckets on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::Timestamp,
    ports::{ConsumerRecord, ConsumerRegistry, QueueId, RateLimiter, StoreResult},
};

#[async_trait]
impl ConsumerRegistry for SqliteStore {
    async fn register_consumer(&self, c: &ConsumerRecord) -> StoreResult<()> {
        let c = c.clone();
        let topics = serde_json::to_string(&c.topics).unwrap_or_else(|_| "[]".into());
        self.writing_relaxed(move |conn| {
            conn.execute(
                "INSERT INTO consumers (grp, consumer, topics, max_concurrency, rate_limit, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (grp, consumer) DO UPDATE SET topics = ?3, max_concurrency = ?4, rate_limit = ?5,
                    registered_at = ?6",
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

    async fn seen(&self, queue: QueueId, group: &str, consumer: &str, now: Timestamp) -> StoreResult<()> {
        let (grp, consumer) = (format!("g:{group}"), consumer.to_owned());
        self.writing_relaxed(move |conn| {
            conn.prepare_cached(
                "INSERT INTO consumer_activity (queue_id, grp, consumer, last_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (queue_id, grp, consumer) DO UPDATE SET last_seen = MAX(last_seen, ?4)",
            )
            .and_then(|mut s| s.execute(params![queue, grp, consumer, now.0]))
            .map_err(backend)?;
            Ok(())
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

    async fn forget_group(&self, queue: QueueId, group: &str) -> StoreResult<()> {
        self.delete_rows(&["consumer_activity"], queue, Some(format!("g:{group}"))).await
    }

    async fn forget_queue(&self, queue: QueueId) -> StoreResult<()> {
        self.delete_rows(&["consumer_activity"], queue, None).await
    }
}

#[async_trait]
impl RateLimiter for SqliteStore {
    async fn take_tokens(&self, group: &str, consumer: &str, want: u32, rate: u32, now: Timestamp) -> StoreResult<u32> {
        let (group, consumer) = (group.to_owned(), consumer.to_owned());
        self.writing_relaxed(move |conn| {
            let (tokens, at): (Option<f64>, Option<i64>) = conn
                .prepare_cached("SELECT tokens, tokens_at FROM rate_buckets WHERE grp = ?1 AND consumer = ?2")
                .and_then(|mut s| s.query_row(params![group, consumer], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(backend)?
                .unwrap_or((None, None));
            let capacity = f64::from(rate);
            let elapsed = at.map_or(f64::INFINITY, |t| (now.0 - t).max(0) as f64 / 1000.0);
            let available = (tokens.unwrap_or(capacity) + elapsed * capacity).min(capacity);
            let taken = available.floor().min(f64::from(want)).max(0.0);
            conn.prepare_cached(
                "INSERT INTO rate_buckets (grp, consumer, tokens, tokens_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (grp, consumer) DO UPDATE SET tokens = ?3, tokens_at = ?4",
            )
            .and_then(|mut s| s.execute(params![group, consumer, available - taken, now.0]))
            .map_err(backend)?;
            Ok(taken as u32)
        })
        .await
    }

    async fn reset(&self, group: &str, consumer: &str) -> StoreResult<()> {
        let (group, consumer) = (group.to_owned(), consumer.to_owned());
        self.writing_relaxed(move |conn| {
            conn.execute("DELETE FROM rate_buckets WHERE grp = ?1 AND consumer = ?2", params![group, consumer])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
