//! Queues and subscriptions on SQLite. Settings and subscriptions are stored
//! as JSON documents (see [`documents`](crate::ports::documents)).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, writer::backend};
use crate::{
    domain::{QueueName, Timestamp},
    error::StoreError,
    ports::{
        MetadataStore, Queue, QueueId, QueueSettings, StoreResult, Subscription,
        documents::{StoredSubscription, from_json, subscription_from, to_json},
    },
};

const QUEUE_COLUMNS: &str = "id, name, settings, owner, created_at, updated_at";

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn create_queue(
        &self,
        name: &QueueName,
        settings: &QueueSettings,
        owner: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Queue> {
        let (name, settings, owner) = (name.clone(), settings.clone(), owner.map(str::to_owned));
        self.writing(move |conn| {
            let now = now.0;
            let inserted = conn
                .execute(
                    "INSERT INTO queues (name, settings, owner, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (name) DO NOTHING",
                    params![name.as_str(), to_json(&settings)?, owner, now],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("queue {name} exists")));
            }
            Ok(Queue {
                id: conn.last_insert_rowid() as QueueId,
                name,
                settings,
                owner,
                created_at: Timestamp(now),
                updated_at: Timestamp(now),
            })
        })
        .await
    }

    async fn update_queue(&self, id: QueueId, settings: &QueueSettings, now: Timestamp) -> StoreResult<Queue> {
        let settings = settings.clone();
        self.writing(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE queues SET settings = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id, to_json(&settings)?, now.0],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            queue_where(conn, "id = ?1", id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn queue(&self, name: &QueueName) -> StoreResult<Option<Queue>> {
        let name = name.clone();
        self.reading_now(|conn| queue_where(conn, "name = ?1", name.as_str()))
    }

    async fn queue_by_id(&self, id: QueueId) -> StoreResult<Option<Queue>> {
        self.reading_now(|conn| queue_where(conn, "id = ?1", id))
    }

    async fn queues(&self) -> StoreResult<Vec<Queue>> {
        self.reading(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {QUEUE_COLUMNS} FROM queues ORDER BY name")).map_err(backend)?;
            let rows = stmt.query_map([], queue_from_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn delete_queue(&self, id: QueueId) -> StoreResult<bool> {
        self.writing(move |conn| {
            conn.execute("DELETE FROM subscriptions WHERE queue_id = ?1", [id]).map_err(backend)?;
            Ok(conn.execute("DELETE FROM queues WHERE id = ?1", [id]).map_err(backend)? > 0)
        })
        .await
    }

    async fn create_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let (id, queue_id, body) = (sub.id.clone(), sub.queue_id, to_json(&StoredSubscription::from(sub))?);
        self.writing(move |conn| {
            let queue_exists = conn
                .query_row("SELECT 1 FROM queues WHERE id = ?1", [queue_id], |_| Ok(()))
                .optional()
                .map_err(backend)?;
            if queue_exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let inserted = conn
                .execute(
                    "INSERT INTO subscriptions (id, queue_id, body) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
                    params![id, queue_id, body],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("subscription {id} exists")));
            }
            Ok(())
        })
        .await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        let id = id.to_owned();
        self.reading_now(|conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM subscriptions WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            body.map(|b| subscription_from(&b)).transpose()
        })
    }

    async fn subscriptions(&self, queue: Option<QueueId>) -> StoreResult<Vec<Subscription>> {
        self.reading(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT body FROM subscriptions WHERE ?1 IS NULL OR queue_id = ?1 ORDER BY id")
                .map_err(backend)?;
            let bodies = stmt.query_map([queue], |r| r.get::<_, String>(0)).map_err(backend)?;
            bodies.map(|b| subscription_from(&b.map_err(backend)?)).collect()
        })
        .await
    }

    async fn update_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let (id, body) = (sub.id.clone(), to_json(&StoredSubscription::from(sub))?);
        self.writing(move |conn| {
            let changed =
                conn.execute("UPDATE subscriptions SET body = ?2 WHERE id = ?1", params![id, body]).map_err(backend)?;
            if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.writing(
            move |conn| Ok(conn.execute("DELETE FROM subscriptions WHERE id = ?1", [id]).map_err(backend)? > 0),
        )
        .await
    }

    async fn describe(&self) -> StoreResult<crate::ports::BackendInfo> {
        self.info().await
    }
}

fn queue_where(conn: &Connection, condition: &str, key: impl rusqlite::ToSql) -> StoreResult<Option<Queue>> {
    let sql = format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE {condition}");
    let row = conn.prepare_cached(&sql).and_then(|mut s| s.query_row([key], queue_from_row).optional());
    row.map_err(backend)?.transpose()
}

fn queue_from_row(r: &Row<'_>) -> rusqlite::Result<StoreResult<Queue>> {
    let name: String = r.get(1)?;
    let settings: String = r.get(2)?;
    let queue = || -> StoreResult<Queue> {
        Ok(Queue {
            id: r.get(0).map_err(backend)?,
            name: QueueName::parse(&name).map_err(StoreError::Failed)?,
            settings: from_json(&settings)?,
            owner: r.get(3).map_err(backend)?,
            created_at: Timestamp(r.get(4).map_err(backend)?),
            updated_at: Timestamp(r.get(5).map_err(backend)?),
        })
    };
    Ok(queue())
}
