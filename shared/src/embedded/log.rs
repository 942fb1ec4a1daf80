//! The message log on SQLite: one row per record, and per partition a row with
//! its next offset; a queue's log exists while its partition rows do.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{
        BackendInfo, Content, LogSpec, MessageLog, PartitionInfo, QueueId, ReadLimit, Record, StoreResult,
        documents::record_columns,
    },
};

#[async_trait]
impl MessageLog for SqliteStore {
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()> {
        let partitions = spec.partitions;
        self.writing(move |conn| {
            for partition in 0..partitions {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO partitions (queue_id, partition, next_offset) VALUES (?1, ?2, 0)",
                )
                .and_then(|mut s| s.execute(params![queue, partition]))
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    /// One transaction: all records are appended, or none.
    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>> {
        self.writing(move |conn| {
            let offsets = reserve_offsets(conn, queue, &records)?;
            for ((partition, record), offset) in records.iter().zip(&offsets) {
                insert(conn, queue, *partition, *offset, record)?;
            }
            Ok(offsets.into_iter().map(Ok).collect())
        })
        .await
    }

    async fn read_range(
        &self,
        queue: QueueId,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>> {
        self.reading_now(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, routing_key, is_json, content, headers, priority, ttl_ms, persistent, published_at,
                        offset FROM records WHERE queue_id = ?1 AND partition = ?2 AND offset >= ?3
                     ORDER BY offset LIMIT ?4",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![queue, partition, from, limit.records], |r| Ok((r.get(9)?, record_from_row(r)?)))
                .map_err(backend)?;
            let mut out: Vec<(u64, Record)> = Vec::new();
            let mut bytes = 0;
            for row in rows {
                let (offset, record) = row.map_err(backend)?;
                if !out.is_empty() && bytes + record.content_bytes() > limit.bytes {
                    break;
                }
                bytes += record.content_bytes();
                out.push((offset, record));
            }
            Ok(out)
        })
    }

    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
        self.reading_now(|conn| partitions(conn, queue))
    }

    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64> {
        // Short writes, oldest records first, so publishes interleave with a long trim.
        // A read first: the writer should not wait on cold pages only to find nothing to remove.
        let mut removed = 0;
        if self.reading(move |conn| oldest_before(conn, queue, before)).await? {
            loop {
                let n = self.writing(move |conn| trim_oldest(conn, queue, before)).await?;
                removed += n;
                if n == 0 {
                    break;
                }
            }
        }
        if let Some(max) = max_bytes {
            // Publishes since the read only add to the excess; the next pass removes the rest.
            let total = self.reading(move |conn| log_bytes(conn, queue)).await?;
            if total > max {
                removed += self.writing(move |conn| trim_oldest_bytes(conn, queue, total - max)).await? as u64;
            }
        }
        Ok(removed)
    }

    async fn delete_log(&self, queue: QueueId) -> StoreResult<()> {
        self.writing(move |conn| {
            conn.execute("DELETE FROM records WHERE queue_id = ?1", [queue]).map_err(backend)?;
            conn.execute("DELETE FROM partitions WHERE queue_id = ?1", [queue]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        self.info().await
    }
}

/// Takes the next offsets of each partition the records go to, one update per partition;
/// `NotFound` when the log or a partition does not exist.
fn reserve_offsets(conn: &Connection, queue: QueueId, records: &[(u32, Record)]) -> StoreResult<Vec<u64>> {
    let mut counts: Vec<(u32, u64)> = Vec::new();
    for (partition, _) in records {
        match counts.iter_mut().find(|(p, _)| p == partition) {
            Some((_, n)) => *n += 1,
            None => counts.push((*partition, 1)),
        }
    }
    let mut next: Vec<(u32, u64)> = Vec::with_capacity(counts.len());
    for (partition, n) in counts {
        let first: u64 = conn
            .prepare_cached(
                "UPDATE partitions SET next_offset = next_offset + ?3 WHERE queue_id = ?1 AND partition = ?2
                 RETURNING next_offset - ?3",
            )
            .and_then(|mut s| s.query_row(params![queue, partition, n], |r| r.get(0)).optional())
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?;
        next.push((partition, first));
    }
    Ok(records
        .iter()
        .map(|(partition, _)| {
            let slot = next.iter_mut().find(|(p, _)| p == partition).expect("reserved above");
            slot.1 += 1;
            slot.1 - 1
        })
        .collect())
}

fn insert(conn: &Connection, queue: QueueId, partition: u32, offset: u64, record: &Record) -> StoreResult<()> {
    let (is_json, content, headers) = record_columns(record)?;
    conn.prepare_cached(
        "INSERT INTO records (queue_id, partition, offset, key, routing_key, is_json, content,
         headers, priority, ttl_ms, persistent, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            queue,
            partition,
            offset,
            record.key,
            record.routing_key,
            is_json,
            content,
            headers,
            record.priority,
            record.ttl_ms,
            record.persistent,
            record.published_at.0
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn partitions(conn: &Connection, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT p.partition, p.next_offset,
                    (SELECT MIN(offset) FROM records r WHERE r.queue_id = p.queue_id AND r.partition = p.partition),
                    (SELECT published_at FROM records r WHERE r.queue_id = p.queue_id AND r.partition = p.partition
                     ORDER BY offset DESC LIMIT 1)
             FROM partitions p WHERE p.queue_id = ?1 ORDER BY p.partition",
        )
        .map_err(backend)?;
    let rows = stmt.query_map([queue], |r| {
        let end_offset: u64 = r.get(1)?;
        Ok(PartitionInfo {
            partition: r.get(0)?,
            start_offset: r.get::<_, Option<u64>>(2)?.unwrap_or(end_offset),
            end_offset,
            last_published_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
        })
    });
    rows.and_then(Iterator::collect).map_err(backend)
}

/// Most records one trimming write removes.
const TRIM_CHUNK: usize = 200;

/// Whether a partition's oldest record was published before `before`.
fn oldest_before(conn: &Connection, queue: QueueId, before: Timestamp) -> StoreResult<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM partitions p WHERE p.queue_id = ?1 AND (
            SELECT published_at FROM records r WHERE r.queue_id = ?1 AND r.partition = p.partition
            ORDER BY r.offset LIMIT 1) < ?2)",
    )
    .and_then(|mut s| s.query_row(params![queue, before.0], |r| r.get(0)))
    .map_err(backend)
}

/// Removes up to [`TRIM_CHUNK`] of each partition's oldest records published before `before`.
/// Records of a partition are in publish order, so the scan stops at the first young one.
fn trim_oldest(conn: &Connection, queue: QueueId, before: Timestamp) -> StoreResult<u64> {
    let partitions: Vec<u32> = conn
        .prepare_cached("SELECT partition FROM partitions WHERE queue_id = ?1")
        .and_then(|mut s| s.query_map([queue], |r| r.get(0))?.collect())
        .map_err(backend)?;
    let mut removed = 0;
    for partition in partitions {
        let old: Vec<i64> = conn
            .prepare_cached(
                "SELECT rowid, published_at FROM records WHERE queue_id = ?1 AND partition = ?2 ORDER BY offset LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![queue, partition, TRIM_CHUNK], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(backend)?
            .into_iter()
            .take_while(|(_, at)| *at < before.0)
            .map(|(rowid, _)| rowid)
            .collect();
        for rowid in &old {
            conn.prepare_cached("DELETE FROM records WHERE rowid = ?1")
                .and_then(|mut s| s.execute([rowid]))
                .map_err(backend)?;
        }
        removed += old.len() as u64;
    }
    Ok(removed)
}

/// Bytes of content a queue's log holds.
fn log_bytes(conn: &Connection, queue: QueueId) -> StoreResult<u64> {
    conn.query_row("SELECT COALESCE(SUM(LENGTH(content)), 0) FROM records WHERE queue_id = ?1", [queue], |r| r.get(0))
        .map_err(backend)
}

/// Removes the oldest records across partitions until `excess` bytes of content are gone.
fn trim_oldest_bytes(conn: &Connection, queue: QueueId, excess: u64) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM records WHERE rowid IN (
            SELECT rowid FROM (
                SELECT rowid, SUM(LENGTH(content)) OVER (
                    ORDER BY published_at, partition, offset ROWS UNBOUNDED PRECEDING
                ) - LENGTH(content) AS before_this
                FROM records WHERE queue_id = ?1
            ) WHERE before_this < ?2
        )",
        params![queue, excess],
    )
    .map_err(backend)
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<Record> {
    let is_json: bool = r.get(2)?;
    let text: String = r.get(3)?;
    let content = if is_json { Content::Json(text) } else { Content::Text(text) };
    let headers: String = r.get(4)?;
    let headers: Map<String, Value> = serde_json::from_str(&headers).unwrap_or_default();
    Ok(Record {
        key: r.get(0)?,
        routing_key: r.get(1)?,
        content,
        headers,
        priority: r.get(5)?,
        ttl_ms: r.get(6)?,
        persistent: r.get(7)?,
        published_at: Timestamp(r.get(8)?),
    })
}
