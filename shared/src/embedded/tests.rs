//! The embedded store's own guarantees: group commit keeps jobs apart, and
//! offsets are dense per partition under concurrent appends.

use std::sync::Arc;

use super::SqliteStore;
use crate::{
    domain::{MessageId, QueueName, Timestamp},
    error::StoreError,
    ports::{Content, LogSpec, MessageLog, MetadataStore, QueueArguments, QueueSettings, Record},
};

fn settings() -> QueueSettings {
    QueueSettings {
        durable: true,
        auto_delete: false,
        exclusive: false,
        arguments: QueueArguments::default(),
        partitions: 2,
        replication: 1,
        retention_ms: None,
        max_bytes: None,
    }
}

fn record(text: &str) -> Record {
    Record {
        key: None,
        routing_key: None,
        content: Content::Text(text.into()),
        headers: Default::default(),
        priority: None,
        ttl_ms: 60_000,
        persistent: true,
        published_at: Timestamp::now(),
    }
}

/// A queue named `q` with its log of two partitions.
async fn queue(store: &SqliteStore) -> crate::ports::Queue {
    let queue = store.create_queue(&QueueName::parse("q").unwrap(), &settings(), None, Timestamp(1)).await.unwrap();
    let spec = LogSpec { partitions: 2, replication: 1, retention_ms: None, max_bytes: None };
    store.create_log(queue.id, &spec).await.unwrap();
    queue
}

/// Appends one record; answers its offset.
async fn append(store: &SqliteStore, queue: u64, partition: u32, r: Record) -> Result<u64, StoreError> {
    store.append(queue, vec![(partition, r)]).await?.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_dense_offsets_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let queue = queue(&store).await;
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { (i % 2, append(&store, queue.id, i % 2, record(&i.to_string())).await.unwrap()) })
        })
        .collect();
    let mut offsets = [Vec::new(), Vec::new()];
    for t in tasks {
        let (p, o) = t.await.unwrap();
        offsets[p as usize].push(o);
    }
    for partition in &mut offsets {
        partition.sort_unstable();
        assert_eq!(*partition, (0..100).collect::<Vec<u64>>());
    }
    let info = store.partitions(queue.id).await.unwrap();
    assert_eq!(info.iter().map(|p| p.end_offset).sum::<u64>(), 200);
}

#[tokio::test]
async fn a_failing_job_does_not_undo_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    let queue = queue(&store).await;
    let (name, settings) = (QueueName::parse("q").unwrap(), settings());
    let (ok, gone, dup) = tokio::join!(
        append(&store, queue.id, 0, record("kept")),
        append(&store, queue.id + 1, 0, record("no such queue")),
        store.create_queue(&name, &settings, None, Timestamp(2)),
    );
    assert!(matches!(gone, Err(StoreError::NotFound)));
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let id = MessageId { queue_id: queue.id, partition: 0, offset: ok.unwrap() };
    assert_eq!(store.read(id).await.unwrap().unwrap().content, Content::Text("kept".into()));
}

#[tokio::test]
async fn trim_removes_old_records_then_the_oldest_over_the_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    let queue = queue(&store).await;
    for i in 0..10 {
        let mut r = record(&"x".repeat(100));
        r.published_at = Timestamp(1_000 + i);
        append(&store, queue.id, 0, r).await.unwrap();
    }
    assert_eq!(store.trim(queue.id, Timestamp(1_003), None).await.unwrap(), 3);
    assert_eq!(store.trim(queue.id, Timestamp(0), Some(450)).await.unwrap(), 3);
    let p = store.partitions(queue.id).await.unwrap();
    assert_eq!((p[0].start_offset, p[0].end_offset), (6, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_steady_stream_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let checkpoints = super::Checkpoints {
        every: std::time::Duration::from_millis(20),
        idle_every: std::time::Duration::from_millis(20),
        restart_after_frames: 256,
    };
    let store = Arc::new(SqliteStore::open_with(&path, checkpoints).unwrap());
    let queue = queue(&store).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    // Eight writers keep the single writer busy, so a checkpoint never finds the WAL idle.
    let writers: Vec<_> = (0..8u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0u64;
                while std::time::Instant::now() < deadline {
                    append(&store, queue.id, w % 2, record(&"x".repeat(1000))).await.unwrap();
                    written += 1;
                }
                written
            })
        })
        .collect();
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len();
    let pages = wal / 4096;
    assert!(written > 2_000, "too few writes to tell: {written}");
    // 1 KB records, about one page each: without restarts the WAL would hold every write.
    assert!(pages < written / 4, "the WAL kept growing: {pages} pages for {written} writes");
    let info = store.partitions(queue.id).await.unwrap();
    assert_eq!(info.iter().map(|p| p.end_offset).sum::<u64>(), written);
}

/// SQLite's plan for `sql`, one line per step.
fn plan(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn lookups_by_message_use_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.sqlite3");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (sql, index) in [
        (
            super::lease_store::deliveries_of_record(),
            "USING INDEX deliveries_by_record (queue_id=? AND partition=? AND offset=?)",
        ),
        (
            super::push::ATTEMPTS_OF_RECORD.to_owned(),
            "USING INDEX attempts_by_record (queue_id=? AND partition=? AND offset=?)",
        ),
    ] {
        let steps = plan(&conn, &sql.replace("?1", "1").replace("?2", "0").replace("?3", "7"));
        assert!(steps.iter().any(|s| s.contains(index)), "{sql}: {steps:?}");
        assert!(!steps.iter().any(|s| s.starts_with("SCAN")), "{sql}: {steps:?}");
    }
}

#[tokio::test]
async fn files_from_before_logs_were_made_get_their_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.sqlite3");
    let store = SqliteStore::open(&path).unwrap();
    let queue = store.create_queue(&QueueName::parse("old").unwrap(), &settings(), None, Timestamp(1)).await.unwrap();
    drop(store);
    // As an earlier version left it: the queue, no partition rows, migrations not run.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DELETE FROM partitions; PRAGMA user_version = 0;").unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.partitions(queue.id).await.unwrap().len(), 2);
    assert_eq!(append(&store, queue.id, 1, record("after")).await.unwrap(), 0);
}

#[test]
fn connections_keep_one_plan_per_statement() {
    let dir = tempfile::tempdir().unwrap();
    let conn = super::connect(&dir.path().join("db")).unwrap();
    // Without it every `LIMIT ?` read was prepared again at each call (half the time of a lookup).
    let stable = conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).unwrap();
    assert!(stable);
}
