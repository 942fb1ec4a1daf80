//! Queues and subscriptions on PostgreSQL. Settings and subscriptions are stored as JSON text
//! in the shape every backend writes ([`documents`](crate::ports::documents)).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{
    PgStore, big,
    errors::{is_unique_violation, pg},
    unsigned,
};
use crate::{
    domain::{QueueName, Timestamp},
    error::StoreError,
    ports::{
        BackendInfo, MetadataStore, Queue, QueueId, QueueSettings, StoreResult, Subscription,
        documents::{StoredSubscription, from_json, subscription_from, to_json},
    },
};

const QUEUE_COLUMNS: &str = "id, name, settings, owner, created_at, updated_at";

#[async_trait]
impl MetadataStore for PgStore {
    async fn create_queue(
        &self,
        name: &QueueName,
        settings: &QueueSettings,
        owner: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Queue> {
        let row = self
            .query_opt(
                "INSERT INTO message_queues (name, settings, owner, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name.as_str(), &to_json(settings)?, &owner, &now.0],
            )
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("queue {name} exists")))?;
        Ok(Queue {
            id: unsigned(row.get(0)),
            name: name.clone(),
            settings: settings.clone(),
            owner: owner.map(str::to_owned),
            created_at: now,
            updated_at: now,
        })
    }

    async fn update_queue(&self, id: QueueId, settings: &QueueSettings, now: Timestamp) -> StoreResult<Queue> {
        let sql =
            format!("UPDATE message_queues SET settings = $2, updated_at = $3 WHERE id = $1 RETURNING {QUEUE_COLUMNS}");
        let row = self.query_opt(&sql, &[&big(id), &to_json(settings)?, &now.0]).await?;
        queue_from_row(&row.ok_or(StoreError::NotFound)?)
    }

    async fn queue(&self, name: &QueueName) -> StoreResult<Option<Queue>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM message_queues WHERE name = $1");
        self.query_opt(&sql, &[&name.as_str()]).await?.as_ref().map(queue_from_row).transpose()
    }

    async fn queue_by_id(&self, id: QueueId) -> StoreResult<Option<Queue>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM message_queues WHERE id = $1");
        self.query_opt(&sql, &[&big(id)]).await?.as_ref().map(queue_from_row).transpose()
    }

    async fn queues(&self) -> StoreResult<Vec<Queue>> {
        let sql = format!("SELECT {QUEUE_COLUMNS} FROM message_queues ORDER BY name");
        self.query(&sql, &[]).await?.iter().map(queue_from_row).collect()
    }

    async fn delete_queue(&self, id: QueueId) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("DELETE FROM message_subscriptions WHERE queue_id = $1", &[&big(id)]).await.map_err(pg)?;
        let deleted = tx.execute("DELETE FROM message_queues WHERE id = $1", &[&big(id)]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(deleted > 0)
    }

    async fn create_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let body = to_json(&StoredSubscription::from(sub))?;
        // The queue's row is locked while the subscription is stored, so a deletion cannot slip between.
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "WITH q AS (SELECT id FROM message_queues WHERE id = $2 FOR KEY SHARE)
                 INSERT INTO message_subscriptions (id, queue_id, body) SELECT $1::TEXT, q.id, $3::TEXT FROM q",
            )
            .await
            .map_err(pg)?;
        match client.execute(&statement, &[&sub.id, &big(sub.queue_id), &body]).await {
            Ok(0) => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!("subscription {} exists", sub.id))),
            Err(e) => Err(pg(e)),
        }
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        let row = self.query_opt("SELECT body FROM message_subscriptions WHERE id = $1", &[&id]).await?;
        row.map(|r| subscription_from(r.get(0))).transpose()
    }

    async fn subscriptions(&self, queue: Option<QueueId>) -> StoreResult<Vec<Subscription>> {
        let rows = self
            .query(
                "SELECT body FROM message_subscriptions WHERE $1::BIGINT IS NULL OR queue_id = $1 ORDER BY id",
                &[&queue.map(big)],
            )
            .await?;
        rows.iter().map(|r| subscription_from(r.get(0))).collect()
    }

    async fn update_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let body = to_json(&StoredSubscription::from(sub))?;
        let changed =
            self.execute("UPDATE message_subscriptions SET body = $2 WHERE id = $1", &[&sub.id, &body]).await?;
        if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        Ok(self.execute("DELETE FROM message_subscriptions WHERE id = $1", &[&id]).await? > 0)
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        self.info().await
    }
}

fn queue_from_row(r: &Row) -> StoreResult<Queue> {
    let name: &str = r.get(1);
    Ok(Queue {
        id: unsigned(r.get(0)),
        name: QueueName::parse(name).map_err(StoreError::Failed)?,
        settings: from_json(r.get(2))?,
        owner: r.get(3),
        created_at: Timestamp(r.get(4)),
        updated_at: Timestamp(r.get(5)),
    })
}
