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
";

/// Creates the tables that are missing.
pub(super) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(SCHEMA).map_err(backend)
}
