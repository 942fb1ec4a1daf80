//! Queues and subscriptions on DynamoDB. A queue is one item under its name (`queues` /
//! `name#<name>`) and a pointer under its id (`queues` / `id#<id>`), written together in one
//! transaction; ids come from an atomic counter and are never reused. A subscription is one item
//! (`subscriptions` / `id#<id>`) holding the document every backend writes.

use async_trait::async_trait;
use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem},
};

use super::{DynamoStore, Item, code, failed, get_n, get_opt_s, get_s, n, s, store_error};
use crate::{
    domain::{QueueName, Timestamp},
    error::StoreError,
    ports::{
        BackendInfo, MetadataStore, Queue, QueueId, QueueSettings, StoreResult, Subscription,
        documents::{StoredSubscription, from_json, subscription_from, to_json},
    },
};

const QUEUES: &str = "queues";
const SUBSCRIPTIONS: &str = "subscriptions";
const COUNTERS: &str = "counters";

fn by_name(name: &str) -> String {
    format!("name#{name}")
}

fn by_id(id: QueueId) -> String {
    format!("id#{id:020}")
}

fn key(pk: &str, sk: String) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

impl DynamoStore {
    async fn next_queue_id(&self) -> StoreResult<QueueId> {
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(COUNTERS, "queue_id".into())))
            .update_expression("ADD #n :one")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_error("numbering a queue", e))?;
        get_n(answer.attributes().ok_or_else(|| StoreError::Failed("the queue counter answered nothing".into()))?, "n")
    }

    async fn get(&self, pk: &str, sk: String) -> StoreResult<Option<Item>> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading an item", e))?;
        Ok(answer.item)
    }

    /// Every item of one partition key whose sort key begins with `prefix`, in sort-key order.
    async fn query_all(&self, pk: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(|e| store_error("querying", e))?.items.unwrap_or_default());
        }
        Ok(out)
    }

    /// The name a queue id points at.
    async fn name_of(&self, id: QueueId) -> StoreResult<Option<String>> {
        self.get(QUEUES, by_id(id)).await?.map(|item| get_s(&item, "name").map(str::to_owned)).transpose()
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.client.transact_write_items().set_transact_items(Some(items)).send().await.map(|_| ())
    }

    fn put(&self, item: Item, condition: &str) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(|e| failed("a put", &e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Which of a cancelled transaction's items failed their condition.
fn failed_conditions(e: &SdkError<TransactWriteItemsError>) -> Option<Vec<bool>> {
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            Some(c.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect())
        }
        _ => None,
    }
}

fn queue_item(q: &Queue) -> StoreResult<Item> {
    let mut item = key(QUEUES, by_name(q.name.as_str()));
    item.insert("id".into(), n(q.id));
    item.insert("name".into(), s(q.name.as_str()));
    item.insert("settings".into(), s(to_json(&q.settings)?));
    if let Some(owner) = &q.owner {
        item.insert("owner".into(), s(owner));
    }
    item.insert("created_at".into(), n(q.created_at.0));
    item.insert("updated_at".into(), n(q.updated_at.0));
    Ok(item)
}

fn queue_from(item: &Item) -> StoreResult<Queue> {
    Ok(Queue {
        id: get_n(item, "id")?,
        name: QueueName::parse(get_s(item, "name")?).map_err(StoreError::Failed)?,
        settings: from_json(get_s(item, "settings")?)?,
        owner: get_opt_s(item, "owner"),
        created_at: Timestamp(get_n(item, "created_at")?),
        updated_at: Timestamp(get_n(item, "updated_at")?),
    })
}

fn subscription_item(sub: &Subscription) -> StoreResult<Item> {
    let mut item = key(SUBSCRIPTIONS, format!("id#{}", sub.id));
    item.insert("queue_id".into(), n(sub.queue_id));
    item.insert("body".into(), s(to_json(&StoredSubscription::from(sub))?));
    Ok(item)
}

#[async_trait]
impl MetadataStore for DynamoStore {
    async fn create_queue(
        &self,
        name: &QueueName,
        settings: &QueueSettings,
        owner: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Queue> {
        if self.get(QUEUES, by_name(name.as_str())).await?.is_some() {
            return Err(StoreError::Conflict(format!("queue {name} exists")));
        }
        let queue = Queue {
            id: self.next_queue_id().await?,
            name: name.clone(),
            settings: settings.clone(),
            owner: owner.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let mut pointer = key(QUEUES, by_id(queue.id));
        pointer.insert("name".into(), s(name.as_str()));
        let items = vec![
            self.put(queue_item(&queue)?, "attribute_not_exists(pk)")?,
            self.put(pointer, "attribute_not_exists(pk)")?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(queue),
            Err(e) if failed_conditions(&e).is_some_and(|f| f.first() == Some(&true)) => {
                Err(StoreError::Conflict(format!("queue {name} exists")))
            }
            Err(e) => Err(store_error("creating a queue", e)),
        }
    }

    async fn update_queue(&self, id: QueueId, settings: &QueueSettings, now: Timestamp) -> StoreResult<Queue> {
        let name = self.name_of(id).await?.ok_or(StoreError::NotFound)?;
        let answer = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(QUEUES, by_name(&name))))
            .update_expression("SET #settings = :settings, #updated = :now")
            .condition_expression("#id = :id")
            .expression_attribute_names("#settings", "settings")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":settings", s(to_json(settings)?))
            .expression_attribute_values(":now", n(now.0))
            .expression_attribute_values(":id", n(id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match answer {
            Ok(answer) => queue_from(&answer.attributes.unwrap_or_default()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Err(StoreError::NotFound),
            Err(e) => Err(store_error("updating a queue", e)),
        }
    }

    async fn queue(&self, name: &QueueName) -> StoreResult<Option<Queue>> {
        self.get(QUEUES, by_name(name.as_str())).await?.as_ref().map(queue_from).transpose()
    }

    async fn queue_by_id(&self, id: QueueId) -> StoreResult<Option<Queue>> {
        let Some(name) = self.name_of(id).await? else { return Ok(None) };
        let queue = self.get(QUEUES, by_name(&name)).await?.as_ref().map(queue_from).transpose()?;
        // The name may already be another queue's, made after this one was deleted.
        Ok(queue.filter(|q| q.id == id))
    }

    async fn queues(&self) -> StoreResult<Vec<Queue>> {
        self.query_all(QUEUES, "name#").await?.iter().map(queue_from).collect()
    }

    async fn delete_queue(&self, id: QueueId) -> StoreResult<bool> {
        let Some(name) = self.name_of(id).await? else { return Ok(false) };
        let delete = |sk: String, condition: Option<&str>| -> StoreResult<TransactWriteItem> {
            let mut d = Delete::builder().table_name(&self.table).set_key(Some(key(QUEUES, sk)));
            if let Some(c) = condition {
                d = d
                    .condition_expression(c)
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":id", n(id));
            }
            Ok(TransactWriteItem::builder().delete(d.build().map_err(|e| failed("a delete", &e))?).build())
        };
        let items = vec![delete(by_name(&name), Some("#id = :id"))?, delete(by_id(id), None)?];
        match self.transact(items).await {
            Ok(()) => {}
            Err(e) if failed_conditions(&e).is_some() => return Ok(false),
            Err(e) => return Err(store_error("deleting a queue", e)),
        }
        // No subscription can be made for it now (its pointer is gone): those it had go too.
        for sub in self.subscriptions(Some(id)).await? {
            self.delete_subscription(&sub.id).await?;
        }
        Ok(true)
    }

    async fn create_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(QUEUES, by_id(sub.queue_id))))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(|e| failed("a condition", &e))?;
        let items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            self.put(subscription_item(sub)?, "attribute_not_exists(pk)")?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => match failed_conditions(&e).as_deref() {
                Some([true, ..]) => Err(StoreError::NotFound),
                Some([_, true]) => Err(StoreError::Conflict(format!("subscription {} exists", sub.id))),
                _ => Err(store_error("creating a subscription", e)),
            },
        }
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        let item = self.get(SUBSCRIPTIONS, format!("id#{id}")).await?;
        item.map(|item| subscription_from(get_s(&item, "body")?)).transpose()
    }

    async fn subscriptions(&self, queue: Option<QueueId>) -> StoreResult<Vec<Subscription>> {
        let mut out = Vec::new();
        for item in self.query_all(SUBSCRIPTIONS, "id#").await? {
            if queue.is_none_or(|q| get_n::<QueueId>(&item, "queue_id").is_ok_and(|id| id == q)) {
                out.push(subscription_from(get_s(&item, "body")?)?);
            }
        }
        Ok(out)
    }

    async fn update_subscription(&self, sub: &Subscription) -> StoreResult<()> {
        let answer = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(subscription_item(sub)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Err(StoreError::NotFound),
            Err(e) => Err(store_error("updating a subscription", e)),
        }
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        let answer = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(SUBSCRIPTIONS, format!("id#{id}"))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("deleting a subscription", e))?;
        Ok(answer.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        let answer = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| store_error("describing the table", e))?;
        let table = answer.table();
        let status = table.and_then(|t| t.table_status()).map_or("unknown", |s| s.as_str());
        Ok(BackendInfo {
            kind: "dynamodb",
            version: format!("table {} ({status})", self.table),
            disk_bytes: table.and_then(|t| t.table_size_bytes()).and_then(|b| u64::try_from(b).ok()),
        })
    }
}
