//! The message log on PostgreSQL: a row per record in `message_messages`, and per partition a
//! row holding its next offset. Appends from concurrent requests are gathered into one
//! transaction (see [`Appender`]), which takes each partition's offsets by updating that row:
//! the row stays locked until the commit, so offsets are dense and become visible in order, and
//! a reader that sees a partition's end sees every record below it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::{PgStore, big, errors::no_connection, errors::pg, gather::Gatherer, unsigned};
use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{
        BackendInfo, Content, LogSpec, MessageLog, PartitionInfo, QueueId, ReadLimit, Record, StoreResult,
        documents::record_columns,
    },
};

/// Most records one append transaction takes.
const MAX_BATCH: usize = 1000;
/// Append transactions in flight at once per process: one builds while another commits.
const WRITERS: usize = 2;
/// Most records one trimming statement removes per partition.
const TRIM_CHUNK: i64 = 1000;

/// One request's records for one queue.
pub(super) struct Append {
    queue: QueueId,
    records: Vec<(u32, Record)>,
}

/// Gathers the appends of concurrent requests into one transaction each, so a busy process
/// commits (and waits for the disk) once for many publishes.
pub(super) type Appender = Gatherer<Append, Vec<StoreResult<u64>>>;

pub(super) fn spawn_appender(pool: Pool) -> Appender {
    let weight: fn(&Append) -> usize = |a| a.records.len();
    Gatherer::spawn("appender", WRITERS, MAX_BATCH, weight, move |batch: Vec<Append>| {
        let pool = pool.clone();
        async move { append_all(&pool, &batch).await }
    })
}

async fn append_all(pool: &Pool, batch: &[Append]) -> StoreResult<Vec<StoreResult<Vec<StoreResult<u64>>>>> {
    let mut counts: BTreeMap<(QueueId, u32), u64> = BTreeMap::new();
    for job in batch {
        for (partition, _) in &job.records {
            *counts.entry((job.queue, *partition)).or_default() += 1;
        }
    }
    let mut client = pool.get().await.map_err(no_connection)?;
    let tx = client.transaction().await.map_err(pg)?;
    let reserve = tx
        .prepare_cached(
            "UPDATE message_partitions SET next_offset = next_offset + $3 WHERE queue_id = $1 AND partition = $2
             RETURNING next_offset - $3",
        )
        .await
        .map_err(pg)?;
    // In key order, so two instances' batches lock partitions in the same order.
    let mut next: BTreeMap<(QueueId, u32), Option<u64>> = BTreeMap::new();
    for ((queue, partition), n) in counts {
        let row = tx.query_opt(&reserve, &[&big(queue), &(partition as i32), &big(n)]).await.map_err(pg)?;
        next.insert((queue, partition), row.map(|r| unsigned(r.get(0))));
    }
    let mut rows = Columns::default();
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let missing = job.records.iter().any(|(p, _)| next.get(&(job.queue, *p)).is_none_or(Option::is_none));
        if missing {
            answers.push(Err(StoreError::NotFound));
            continue;
        }
        let mut offsets = Vec::with_capacity(job.records.len());
        for (partition, record) in &job.records {
            let slot = next.get_mut(&(job.queue, *partition)).and_then(Option::as_mut).expect("reserved above");
            rows.push(job.queue, *partition, *slot, record)?;
            offsets.push(Ok(*slot));
            *slot += 1;
        }
        answers.push(Ok(offsets));
    }
    if !rows.queue.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO message_messages (queue_id, partition, \"offset\", key, routing_key, is_json, content,
                    headers, priority, ttl_ms, persistent, published_at)
                 SELECT * FROM UNNEST($1::BIGINT[], $2::INT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BOOL[],
                    $7::TEXT[], $8::TEXT[], $9::SMALLINT[], $10::BIGINT[], $11::BOOL[], $12::BIGINT[])",
            )
            .await
            .map_err(pg)?;
        let c = &rows;
        tx.execute(
            &insert,
            &[
                &c.queue,
                &c.partition,
                &c.offset,
                &c.key,
                &c.routing_key,
                &c.is_json,
                &c.content,
                &c.headers,
                &c.priority,
                &c.ttl_ms,
                &c.persistent,
                &c.published_at,
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(answers)
}

/// Records as columns, bound as arrays to one insert.
#[derive(Default)]
struct Columns {
    queue: Vec<i64>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    key: Vec<Option<String>>,
    routing_key: Vec<Option<String>>,
    is_json: Vec<bool>,
    content: Vec<String>,
    headers: Vec<String>,
    priority: Vec<Option<i16>>,
    ttl_ms: Vec<i64>,
    persistent: Vec<bool>,
    published_at: Vec<i64>,
}

impl Columns {
    fn push(&mut self, queue: QueueId, partition: u32, offset: u64, r: &Record) -> StoreResult<()> {
        let (is_json, content, headers) = record_columns(r)?;
        self.queue.push(big(queue));
        self.partition.push(partition as i32);
        self.offset.push(big(offset));
        self.key.push(r.key.clone());
        self.routing_key.push(r.routing_key.clone());
        self.is_json.push(is_json);
        self.content.push(content.to_owned());
        self.headers.push(headers);
        self.priority.push(r.priority.map(i16::from));
        self.ttl_ms.push(big(r.ttl_ms));
        self.persistent.push(r.persistent);
        self.published_at.push(r.published_at.0);
        Ok(())
    }
}

#[async_trait]
impl MessageLog for PgStore {
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()> {
        self.execute(
            "INSERT INTO message_partitions (queue_id, partition, next_offset)
             SELECT $1::BIGINT, p, 0 FROM generate_series(0, $2::INT - 1) AS p ON CONFLICT DO NOTHING",
            &[&big(queue), &(spec.partitions as i32)],
        )
        .await
        .map(drop)
    }

    async fn delete_log(&self, queue: QueueId) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        for sql in
            ["DELETE FROM message_partitions WHERE queue_id = $1", "DELETE FROM message_messages WHERE queue_id = $1"]
        {
            tx.execute(sql, &[&big(queue)]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// One transaction, shared with concurrent appends: all records are appended, or none.
    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>> {
        self.appender.ask(Append { queue, records }).await
    }

    async fn read_range(
        &self,
        queue: QueueId,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>> {
        let rows = self
            .query(
                "SELECT key, routing_key, is_json, content, headers, priority, ttl_ms, persistent, published_at,
                    \"offset\" FROM message_messages WHERE queue_id = $1 AND partition = $2 AND \"offset\" >= $3
                 ORDER BY \"offset\" LIMIT $4",
                &[&big(queue), &(partition as i32), &big(from), &i64::from(limit.records)],
            )
            .await?;
        let mut out: Vec<(u64, Record)> = Vec::with_capacity(rows.len());
        let mut bytes = 0;
        for row in &rows {
            let record = record_from_row(row, 0);
            if !out.is_empty() && bytes + record.content_bytes() > limit.bytes {
                break;
            }
            bytes += record.content_bytes();
            out.push((unsigned(row.get(9)), record));
        }
        Ok(out)
    }

    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
        let rows = self
            .query(
                "SELECT p.partition, p.next_offset,
                    (SELECT MIN(\"offset\") FROM message_messages m WHERE m.queue_id = p.queue_id
                     AND m.partition = p.partition),
                    (SELECT published_at FROM message_messages m WHERE m.queue_id = p.queue_id
                     AND m.partition = p.partition ORDER BY \"offset\" DESC LIMIT 1)
                 FROM message_partitions p WHERE p.queue_id = $1 ORDER BY p.partition",
                &[&big(queue)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let end_offset = unsigned(r.get(1));
                PartitionInfo {
                    partition: r.get::<_, i32>(0) as u32,
                    start_offset: r.get::<_, Option<i64>>(2).map_or(end_offset, unsigned),
                    end_offset,
                    last_published_at: r.get::<_, Option<i64>>(3).map(Timestamp),
                }
            })
            .collect())
    }

    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64> {
        let mut removed = 0;
        // Short statements, oldest first, each removing a prefix of one partition's records
        // (up to the first one published at or after `before`).
        for info in self.partitions(queue).await? {
            loop {
                let n = self
                    .execute(
                        "WITH head AS (
                            SELECT \"offset\", published_at FROM message_messages
                            WHERE queue_id = $1 AND partition = $2 ORDER BY \"offset\" LIMIT $4
                         ), cut AS (
                            SELECT COALESCE(MIN(\"offset\") FILTER (WHERE published_at >= $3), MAX(\"offset\") + 1)
                                AS below FROM head
                         )
                         DELETE FROM message_messages m USING cut
                         WHERE m.queue_id = $1 AND m.partition = $2 AND m.\"offset\" < cut.below",
                        &[&big(queue), &(info.partition as i32), &before.0, &TRIM_CHUNK],
                    )
                    .await?;
                removed += n;
                if n < TRIM_CHUNK as u64 {
                    break;
                }
            }
        }
        if let Some(max) = max_bytes {
            removed += self
                .execute(
                    "DELETE FROM message_messages m USING (
                        SELECT partition, \"offset\" FROM (
                            SELECT partition, \"offset\", SUM(LENGTH(content)) OVER (
                                ORDER BY published_at DESC, partition DESC, \"offset\" DESC ROWS UNBOUNDED PRECEDING
                            ) AS newer_and_this
                            FROM message_messages WHERE queue_id = $1
                        ) s WHERE newer_and_this > $2
                     ) old
                     WHERE m.queue_id = $1 AND m.partition = old.partition AND m.\"offset\" = old.\"offset\"",
                    &[&big(queue), &big(max)],
                )
                .await?;
        }
        Ok(removed)
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        self.info().await
    }
}

/// A record from a row holding `key, routing_key, is_json, content, headers, priority, ttl_ms,
/// persistent, published_at` from column `at` on.
pub(super) fn record_from_row(r: &Row, at: usize) -> Record {
    let text: String = r.get(at + 3);
    let content = if r.get(at + 2) { Content::Json(text) } else { Content::Text(text) };
    let headers: &str = r.get(at + 4);
    Record {
        key: r.get(at),
        routing_key: r.get(at + 1),
        content,
        headers: serde_json::from_str(headers).unwrap_or_default(),
        priority: r.get::<_, Option<i16>>(at + 5).and_then(|p| u8::try_from(p).ok()),
        ttl_ms: unsigned(r.get(at + 6)),
        persistent: r.get(at + 7),
        published_at: Timestamp(r.get(at + 8)),
    }
}
