//! Vacuums the tables whose rows churn (leases come and go; fetch offsets, partition ends,
//! counters and rate buckets are rewritten in place) once their dead rows outnumber the live
//! ones, whether or not the server's autovacuum is on or keeping up: dead lease rows left in
//! place make every claim scan past them. `SKIP_LOCKED` leaves a table another instance (or
//! autovacuum) is vacuuming to it. A transaction held open anywhere on the server keeps the
//! rows it could still see; they go at the first pass after it ends. Each pass also analyzes
//! the table, and a table that changed by more than half its rows since it was last analyzed
//! is analyzed alone, so the planner's figures stay true where autovacuum does not run.

use std::{sync::Weak, time::Duration};

use deadpool_postgres::Pool;

use super::errors::{no_connection, pg};
use crate::ports::StoreResult;

/// How often the dead rows are counted.
const EVERY: Duration = Duration::from_secs(10);
/// Dead rows a table may hold before it is vacuumed, however few its live ones.
const MIN_DEAD: i64 = 1000;
const CHURNING: [&str; 5] =
    ["message_leases", "message_group_offsets", "message_partitions", "message_counters", "message_rate_buckets"];

/// Vacuums every [`EVERY`] what needs it, until `alive` is gone (the store was dropped).
pub(super) fn spawn_vacuumer<T: Send + Sync + 'static>(pool: Pool, alive: Weak<T>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            if alive.upgrade().is_none() {
                return;
            }
            if let Err(e) = vacuum_pass(&pool).await {
                tracing::debug!("vacuum pass: {e}");
            }
        }
    });
}

/// Vacuums each churning table whose dead rows outnumber its live ones (and [`MIN_DEAD`]);
/// analyzes one whose changes since its last analysis do.
async fn vacuum_pass(pool: &Pool) -> StoreResult<()> {
    let client = pool.get().await.map_err(no_connection)?;
    let tables: Vec<&str> = CHURNING.to_vec();
    let rows = client
        .query(
            "SELECT relname::TEXT, n_dead_tup > GREATEST($2, n_live_tup) FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = ANY($1)
                AND (n_dead_tup > GREATEST($2, n_live_tup) OR n_mod_since_analyze > GREATEST($2, n_live_tup / 2))",
            &[&tables, &MIN_DEAD],
        )
        .await
        .map_err(pg)?;
    for row in rows {
        let (table, dead): (String, bool) = (row.get(0), row.get(1));
        // Only names of CHURNING reach the statement.
        if let Some(name) = CHURNING.iter().find(|t| **t == table) {
            let what = if dead { "VACUUM (SKIP_LOCKED, ANALYZE)" } else { "ANALYZE (SKIP_LOCKED)" };
            client.batch_execute(&format!("{what} {name}")).await.map_err(pg)?;
        }
    }
    Ok(())
}
