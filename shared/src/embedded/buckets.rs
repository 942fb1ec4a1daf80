//! Time buckets of figures on SQLite: one row per queue, width and start, merged in place by
//! the writer (every process's flush goes through a write transaction, so merges never race).

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::{Figures, Timestamp},
    error::StoreError,
    ports::{QueueId, Statistics, StatsBucket, StoreResult},
};

#[async_trait]
impl Statistics for SqliteStore {
    async fn merge_buckets(&self, buckets: Vec<StatsBucket>) -> StoreResult<()> {
        if buckets.is_empty() {
            return Ok(());
        }
        self.writing_relaxed(move |conn| buckets.iter().try_for_each(|b| merge_into(conn, b))).await
    }

    async fn buckets(&self, queue: Option<QueueId>, from: Timestamp, to: Timestamp) -> StoreResult<Vec<StatsBucket>> {
        self.reading(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT queue_id, width_ms, start, figures FROM stats_buckets
                     WHERE start >= ?1 AND start < ?2 AND (?3 IS NULL OR queue_id = ?3)",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![from.0, to.0, queue], |r| {
                    Ok((r.get::<_, QueueId>(0)?, r.get::<_, u64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (queue, width_ms, start, bytes) = row.map_err(backend)?;
                Ok(StatsBucket { queue, start: Timestamp(start), width_ms, figures: decode(&bytes)? })
            })
            .collect()
        })
        .await
    }

    async fn roll_up(&self, width_ms: u64, into_ms: u64, before: Timestamp) -> StoreResult<u64> {
        self.writing_relaxed(move |conn| {
            let mut merged: BTreeMap<(QueueId, i64), Figures> = BTreeMap::new();
            let mut count = 0;
            {
                let mut stmt = conn
                    .prepare_cached(
                        "DELETE FROM stats_buckets WHERE width_ms = ?1 AND start < ?2
                         RETURNING queue_id, start, figures",
                    )
                    .map_err(backend)?;
                let mut rows = stmt.query(params![width_ms, before.0]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let (queue, start): (QueueId, i64) = (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?);
                    let figures = decode(&r.get::<_, Vec<u8>>(2).map_err(backend)?)?;
                    let coarse = start - start.rem_euclid(into_ms as i64);
                    merged.entry((queue, coarse)).or_default().merge(&figures);
                    count += 1;
                }
            }
            for ((queue, start), figures) in merged {
                merge_into(conn, &StatsBucket { queue, start: Timestamp(start), width_ms: into_ms, figures })?;
            }
            Ok(count)
        })
        .await
    }

    async fn expire_buckets(&self, before: Timestamp) -> StoreResult<u64> {
        self.writing_relaxed(move |conn| {
            conn.prepare_cached("DELETE FROM stats_buckets WHERE start < ?1")
                .and_then(|mut s| s.execute([before.0]))
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }
}

/// Adds a bucket's figures to the stored row, or stores it.
fn merge_into(conn: &Connection, bucket: &StatsBucket) -> StoreResult<()> {
    let key = params![bucket.queue, bucket.width_ms, bucket.start.0];
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT figures FROM stats_buckets WHERE queue_id = ?1 AND width_ms = ?2 AND start = ?3")
        .and_then(|mut s| s.query_row(key, |r| r.get(0)).optional())
        .map_err(backend)?;
    let mut figures = match stored {
        Some(bytes) => decode(&bytes)?,
        None => Figures::default(),
    };
    figures.merge(&bucket.figures);
    conn.prepare_cached(
        "INSERT INTO stats_buckets (queue_id, width_ms, start, figures) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (queue_id, width_ms, start) DO UPDATE SET figures = excluded.figures",
    )
    .and_then(|mut s| s.execute(params![bucket.queue, bucket.width_ms, bucket.start.0, figures.encode()]))
    .map(drop)
    .map_err(backend)
}

fn decode(bytes: &[u8]) -> StoreResult<Figures> {
    Figures::decode(bytes).ok_or_else(|| StoreError::Failed("a stored statistics bucket does not decode".into()))
}
