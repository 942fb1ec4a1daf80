//! Every port on PostgreSQL, so any number of service instances share one database: each
//! decision between instances is a conditional write or a row lock taken there (see
//! `docs/postgres.md`). A pooled async driver (tokio-postgres through deadpool), statements
//! prepared once per connection, every value bound as a parameter.

mod acquire;
mod consumers;
mod counters;
mod deliveries;
mod errors;
mod finisher;
mod gather;
mod leases;
mod log;
mod meta;
mod push;
mod schema;
mod signals;
mod statistics;
mod vacuum;

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, types::ToSql};

use errors::{no_connection, pg};

use crate::{
    error::StoreError,
    ports::{BackendInfo, StoreResult},
};

/// How the pool connects and waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections this process opens.
    pub size: usize,
    /// How long opening a connection, or waiting for a free one, may take.
    pub connect_timeout: Duration,
    /// Longest a statement may run on the server (`statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self { size: 16, connect_timeout: Duration::from_secs(5), statement_timeout: Duration::from_secs(30) }
    }
}

/// The PostgreSQL store; implements every port.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    counters: Arc<counters::Pending>,
    appender: log::Appender,
    finisher: finisher::Finisher,
    /// How to connect, for connections outside the pool (listening for signals).
    config: tokio_postgres::Config,
    /// This instance's name in signals, random per process.
    origin: u64,
    /// Whether this store is the message log too: leasing then reads the leased records.
    log_here: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`), applies
    /// the migrations it has not had, and starts the background writers. Needs a Tokio runtime.
    pub async fn connect(url: &str, options: PoolOptions) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Failed(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("message-queue");
        }
        config.connect_timeout(options.connect_timeout);
        config.keepalives_idle(Duration::from_secs(30));
        // Generic plans: the leasing and finishing statements cost more to plan than to run, and
        // every access path is keyed, so a generic plan is the one a custom plan would be. No
        // sequential scans: lease tables swing from empty to large within seconds, faster than
        // their statistics follow, and a plan made while one looked empty must not read it whole.
        // No JIT: a disabled scan's cost estimate is huge, which would set off a compilation
        // costing hundreds of milliseconds for statements that run in one.
        config.options(format!(
            "-c statement_timeout={} -c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off",
            options.statement_timeout.as_millis()
        ));
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.size.max(1))
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Failed(format!("cannot build the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(no_connection)?;
        schema::migrate(&mut client).await?;
        drop(client);
        let counters = Arc::new(counters::Pending::default());
        counters::spawn_flusher(pool.clone(), Arc::downgrade(&counters));
        vacuum::spawn_vacuumer(pool.clone(), Arc::downgrade(&counters));
        let appender = log::spawn_appender(pool.clone());
        let finisher = finisher::spawn_finisher(pool.clone());
        let mut random = [0; 8];
        getrandom::fill(&mut random).map_err(|e| StoreError::Failed(format!("no random source: {e}")))?;
        Ok(Self { pool, counters, appender, finisher, config, origin: u64::from_le_bytes(random), log_here: false })
    }

    /// This store as the message log too: leasing reads the leased records in the same statement.
    /// Only for a store that is the log: with the log elsewhere its records would not be these.
    pub fn serving_the_log(mut self) -> Self {
        self.log_here = true;
        self
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(no_connection)
    }

    async fn query(&self, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&statement, params).await.map_err(pg)
    }

    async fn query_opt(&self, sql: &str, params: Params<'_>) -> StoreResult<Option<Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.query_opt(&statement, params).await.map_err(pg)
    }

    async fn execute(&self, sql: &str, params: Params<'_>) -> StoreResult<u64> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.execute(&statement, params).await.map_err(pg)
    }

    /// The server's version and the database's size, after a round trip.
    async fn info(&self) -> StoreResult<BackendInfo> {
        let row = self
            .query_opt("SELECT current_setting('server_version'), pg_database_size(current_database())", &[])
            .await?
            .ok_or_else(|| StoreError::Failed("no answer to a version query".into()))?;
        let size: i64 = row.get(1);
        Ok(BackendInfo { kind: "postgres", version: row.get(0), disk_bytes: Some(size.max(0) as u64) })
    }
}

/// An id, offset or count as PostgreSQL's `bigint`.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bigint` read back as an id, offset or count.
fn unsigned(n: i64) -> u64 {
    n.max(0) as u64
}
