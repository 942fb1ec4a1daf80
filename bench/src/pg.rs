//! A scratch PostgreSQL database per bench server, on the server `MQ_POSTGRES_URL` names (run
//! the bench under `infra/postgres.sh`), and what the store's tables hold.

use tokio_postgres::{Client, NoTls};

/// A database made for one run; [`Scratch::drop_now`] removes it.
pub(crate) struct Scratch {
    pub(crate) url: String,
    name: String,
    server: String,
}

impl Scratch {
    pub(crate) async fn create(label: &str) -> Result<Self, String> {
        let server = std::env::var("MQ_POSTGRES_URL")
            .map_err(|_| "MQ_POSTGRES_URL is unset: run the bench under infra/postgres.sh".to_owned())?;
        let name = format!("mq_bench_{label}_{}", std::process::id());
        let admin = connect(&server).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .map_err(|e| e.to_string())?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(|e| e.to_string())?;
        let (base, _) = server.rsplit_once('/').ok_or("MQ_POSTGRES_URL names no database")?;
        Ok(Self { url: format!("{base}/{name}"), name, server })
    }

    pub(crate) async fn drop_now(self) -> Result<(), String> {
        let admin = connect(&self.server).await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin.batch_execute(&sql).await.map_err(|e| e.to_string())
    }
}

/// A client whose connection runs on a task of its own.
pub(crate) async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// One table's size: everything it takes on disk (indexes and TOAST too), its live and dead rows.
#[derive(Debug, Clone)]
pub(crate) struct TableSize {
    pub(crate) table: String,
    pub(crate) bytes: i64,
    pub(crate) live: i64,
    pub(crate) dead: i64,
}

/// The sizes of the store's busiest tables.
pub(crate) async fn table_sizes(client: &Client) -> Result<Vec<TableSize>, String> {
    let rows = client
        .query(
            "SELECT relname::TEXT, pg_total_relation_size(relid), n_live_tup, n_dead_tup FROM pg_stat_user_tables
             WHERE relname IN ('message_messages', 'message_leases', 'message_settled', 'message_partitions',
                               'message_group_offsets', 'message_counters')
             ORDER BY relname",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| TableSize { table: r.get(0), bytes: r.get(1), live: r.get(2), dead: r.get(3) }).collect())
}
