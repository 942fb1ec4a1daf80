//! The embedded database's tables, created on first open.

use rusqlite::Connection;

use super::writer::backend;
use crate::ports::StoreResult;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    owner TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    queue_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (queue_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    queue_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT,
    routing_key TEXT,
    is_json INTEGER NOT NULL,
    content TEXT NOT NULL,
    headers TEXT NOT NULL,
    priority INTEGER,
    ttl_ms INTEGER NOT NULL,
    persistent INTEGER NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, partition, offset)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    queue_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_queue ON subscriptions (queue_id);
CREATE TABLE IF NOT EXISTS group_offsets (
    queue_id INTEGER NOT NULL,
    grp TEXT NOT NULL,
    partition INTEGER NOT NULL,
    fetch_offset INTEGER NOT NULL,
    PRIMARY KEY (queue_id, grp, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deliveries (
    queue_id INTEGER NOT NULL,
    grp TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    state TEXT NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0,
    consumer TEXT,
    until INTEGER,
    first_delivered_at INTEGER,
    last_delivered_at INTEGER,
    finished_at INTEGER,
    reason TEXT,
    PRIMARY KEY (queue_id, grp, partition, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (queue_id, grp, state, until);
CREATE INDEX IF NOT EXISTS deliveries_by_record ON deliveries (queue_id, partition, offset);
CREATE TABLE IF NOT EXISTS counters (
    queue_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (queue_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumers (
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    topics TEXT NOT NULL,
    max_concurrency INTEGER,
    rate_limit INTEGER,
    registered_at INTEGER NOT NULL,
    tokens REAL,
    tokens_at INTEGER,
    PRIMARY KEY (grp, consumer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_buckets (
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    tokens REAL NOT NULL,
    tokens_at INTEGER NOT NULL,
    PRIMARY KEY (grp, consumer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    queue_id INTEGER NOT NULL,
    grp TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_record ON attempts (queue_id, partition, offset);
CREATE TABLE IF NOT EXISTS failure_runs (
    queue_id INTEGER NOT NULL,
    grp TEXT NOT NULL,
    failures INTEGER NOT NULL,
    since INTEGER,
    PRIMARY KEY (queue_id, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consumer_activity (
    queue_id INTEGER NOT NULL,
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (queue_id, grp, consumer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_buckets (
    queue_id INTEGER NOT NULL,
    width_ms INTEGER NOT NULL,
    start INTEGER NOT NULL,
    figures BLOB NOT NULL,
    PRIMARY KEY (queue_id, width_ms, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_buckets_by_start ON stats_buckets (start);
";

/// Changes to files made by earlier versions, by `user_version`: each runs once, in order.
const MIGRATIONS: &[&str] = &[
    // 1: a queue's log is its rows in `partitions`, made when the queue is created; files from
    // before made them on first append, so make the missing ones.
    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1023)
     INSERT OR IGNORE INTO partitions (queue_id, partition, next_offset)
     SELECT q.id, n.i, 0 FROM queues q JOIN n ON n.i < json_extract(q.settings, '$.partitions')",
];

/// Creates the tables that are missing, then runs the migrations the file has not had.
pub(super) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(SCHEMA).map_err(backend)?;
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1))
            .map_err(backend)?;
    }
    Ok(())
}
