//! The schema, as numbered migrations applied at start: each runs once, in order, inside one
//! transaction holding an advisory lock, so instances starting together apply it once.
//! `docs/postgres.md` tells what each table is for and why it is shaped so.

use deadpool_postgres::Object;

use super::errors::pg;
use crate::ports::StoreResult;

/// The lock every migrating instance takes (any constant; "mq-migrate" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d71_2d6d_6967_7261;

/// The migrations, by number from 1: never edited once released, only added to.
const MIGRATIONS: &[(&str, &str)] =
    &[("the tables of every port", V1), ("the due-leases index serves only lookups by time", V2)];

const V1: &str = r#"
CREATE TABLE message_queues (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    owner TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Each append moves its partition's next offset: a small row updated in place (HOT), so
-- pages keep room for the new versions.
CREATE TABLE message_partitions (
    queue_id BIGINT NOT NULL,
    partition INT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (queue_id, partition)
) WITH (fillfactor = 10);

-- The log: insert-only, removed oldest first by retention.
CREATE TABLE message_messages (
    queue_id BIGINT NOT NULL,
    partition INT NOT NULL,
    "offset" BIGINT NOT NULL,
    key TEXT,
    routing_key TEXT,
    is_json BOOLEAN NOT NULL,
    content TEXT NOT NULL,
    headers TEXT NOT NULL,
    priority SMALLINT,
    ttl_ms BIGINT NOT NULL,
    persistent BOOLEAN NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (queue_id, partition, "offset")
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);

CREATE TABLE message_subscriptions (
    id TEXT PRIMARY KEY,
    queue_id BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX message_subscriptions_by_queue ON message_subscriptions (queue_id);

-- Per group and partition, the next offset never handed out.
CREATE TABLE message_group_offsets (
    queue_id BIGINT NOT NULL,
    grp TEXT NOT NULL,
    partition INT NOT NULL,
    fetch_offset BIGINT NOT NULL,
    PRIMARY KEY (queue_id, grp, partition)
) WITH (fillfactor = 10);

-- Deliveries in flight (leased, or available again at `until`): rows come and go, so the table
-- stays as small as what is in flight, and vacuum runs after every few thousand changes.
CREATE TABLE message_leases (
    queue_id BIGINT NOT NULL,
    partition INT NOT NULL,
    "offset" BIGINT NOT NULL,
    grp TEXT NOT NULL,
    state TEXT NOT NULL,
    delivery_count INT NOT NULL,
    retry_count INT NOT NULL,
    consumer TEXT,
    until BIGINT NOT NULL,
    first_delivered_at BIGINT,
    last_delivered_at BIGINT,
    reason TEXT,
    PRIMARY KEY (queue_id, partition, "offset", grp)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_cost_delay = 0);
CREATE INDEX message_leases_due ON message_leases (queue_id, grp, until);

-- Finished deliveries: insert-only, removed with the records by retention.
CREATE TABLE message_settled (
    queue_id BIGINT NOT NULL,
    partition INT NOT NULL,
    "offset" BIGINT NOT NULL,
    grp TEXT NOT NULL,
    state TEXT NOT NULL,
    delivery_count INT NOT NULL,
    retry_count INT NOT NULL,
    consumer TEXT,
    first_delivered_at BIGINT,
    last_delivered_at BIGINT,
    finished_at BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (queue_id, partition, "offset", grp)
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);

-- Counters in stripes: writers add to one of many rows, readers sum them.
CREATE TABLE message_counters (
    queue_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    stripe SMALLINT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (queue_id, name, stripe)
) WITH (fillfactor = 50);

-- Time buckets of figures (counts and latency histograms) flushed by every instance.
CREATE TABLE message_metrics (
    queue_id BIGINT NOT NULL,
    width_ms BIGINT NOT NULL,
    start BIGINT NOT NULL,
    figures BYTEA NOT NULL,
    PRIMARY KEY (queue_id, width_ms, start)
);
CREATE INDEX message_metrics_by_start ON message_metrics (start);

CREATE TABLE message_consumers (
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    topics TEXT[] NOT NULL,
    max_concurrency INT,
    rate_limit INT,
    registered_at BIGINT NOT NULL,
    PRIMARY KEY (grp, consumer)
);

CREATE TABLE message_rate_buckets (
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    tokens_at BIGINT NOT NULL,
    PRIMARY KEY (grp, consumer)
) WITH (fillfactor = 50);

CREATE TABLE message_consumer_activity (
    queue_id BIGINT NOT NULL,
    grp TEXT NOT NULL,
    consumer TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (queue_id, grp, consumer)
) WITH (fillfactor = 50);

CREATE TABLE message_attempts (
    queue_id BIGINT NOT NULL,
    grp TEXT NOT NULL,
    partition INT NOT NULL,
    "offset" BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status INT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    id BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX message_attempts_by_record ON message_attempts (queue_id, partition, "offset");

CREATE TABLE message_failure_runs (
    queue_id BIGINT NOT NULL,
    grp TEXT NOT NULL,
    failures BIGINT NOT NULL,
    since BIGINT,
    PRIMARY KEY (queue_id, grp)
);
"#;

/// `until` is never NULL: the predicate only keeps the planner from walking a group's leases
/// through this index to find one delivery by key (the primary key finds it), since a query
/// proves it only from a condition on `until`, which every search for due deliveries has.
const V2: &str = r#"
DROP INDEX message_leases_due;
CREATE INDEX message_leases_due ON message_leases (queue_id, grp, until) WHERE until IS NOT NULL;
"#;

/// Applies the migrations the database has not had; answers how many it applied.
pub(super) async fn migrate(client: &mut Object) -> StoreResult<usize> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS message_schema_migrations (
            version INT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(pg)?;
    let done: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM message_schema_migrations", &[]).await.map_err(pg)?.get(0);
    let mut applied = 0;
    for (i, (description, sql)) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO message_schema_migrations (version, description) VALUES ($1, $2)",
            &[&version, description],
        )
        .await
        .map_err(pg)?;
        applied += 1;
    }
    tx.commit().await.map_err(pg)?;
    if applied > 0 {
        tracing::info!(applied, "PostgreSQL schema migrated");
    }
    Ok(applied)
}
