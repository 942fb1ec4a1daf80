//! Finishing a record without success: a copy goes to the group's dead-letter
//! queue first (when one is set), then the record is settled, so a crash in
//! between repeats the copy rather than losing the record.

use serde_json::{Value, json};

use super::Service;
use crate::{
    auth::Principal,
    domain::{MessageId, QueueName},
    error::Result,
    ports::{DropCause, GroupRef, Lease, Queue, Record, SettleRequest, Settlement},
};

impl Service {
    /// The dead-letter queue of a group: its subscription's, else the queue's `x-dead-letter-queue`.
    pub(super) async fn dead_letter_queue_of(&self, queue: &Queue, group: &GroupRef) -> Result<Option<QueueName>> {
        if let GroupRef::Subscription(id) = group {
            if let Some(dlq) = self.meta.subscription(id).await?.and_then(|s| s.dead_letter_queue) {
                return Ok(Some(dlq));
            }
        }
        Ok(queue.settings.arguments.dead_letter_queue.clone())
    }

    /// Deliveries a group gets before a record is dead-lettered.
    pub(super) async fn delivery_limit(&self, queue: &Queue, group: &GroupRef) -> Result<u32> {
        if let GroupRef::Subscription(id) = group {
            if let Some(sub) = self.meta.subscription(id).await? {
                return Ok(sub.retry_policy.max_retries + 1);
            }
        }
        Ok(queue.settings.arguments.delivery_limit.unwrap_or(self.config.max_deliveries))
    }

    /// Dead-letters (or drops) a leased record and settles it for the group.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn drop_record(
        &self,
        queue: &Queue,
        group: &GroupRef,
        id: MessageId,
        record: Option<&Record>,
        lease: &Lease,
        cause: DropCause,
        reason: &str,
    ) -> Result<bool> {
        let dead_lettered =
            self.copy_to_dead_letter_queue(queue, group, id, record, lease.delivery_count, cause, reason).await?;
        let request = SettleRequest {
            queue: queue.id,
            group: group.clone(),
            partition: id.partition,
            offset: id.offset,
            settlement: Settlement::Drop { cause, dead_lettered },
            now: self.now(),
            expect_delivery: Some(lease.delivery_count),
            reason: Some(reason.to_owned()),
        };
        self.delivery.settle(&request).await?.ok();
        Ok(dead_lettered)
    }

    /// Publishes a copy of the record to the group's dead-letter queue; false when there is none.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy_to_dead_letter_queue(
        &self,
        queue: &Queue,
        group: &GroupRef,
        id: MessageId,
        record: Option<&Record>,
        delivery_count: u32,
        cause: DropCause,
        reason: &str,
    ) -> Result<bool> {
        let (Some(dlq), Some(record)) = (self.dead_letter_queue_of(queue, group).await?, record) else {
            return Ok(false);
        };
        if dlq == queue.name {
            return Ok(false);
        }
        let mut headers = record.headers.clone();
        let death = json!({
            "x-dead-letter-reason": cause.as_str(),
            "x-dead-letter-detail": reason,
            "x-original-queue": queue.name,
            "x-original-message-id": id.to_string(),
            "x-dead-letter-group": group.name(),
            "x-delivery-count": delivery_count,
            "x-dead-lettered-at": self.now(),
        });
        if let Value::Object(death) = death {
            headers.extend(death);
        }
        let copy = super::Publish {
            queue: dlq,
            key: record.key.clone(),
            routing_key: record.routing_key.clone(),
            content: record.content.clone(),
            headers,
            priority: record.priority,
            ttl_ms: None,
            persistent: true,
        };
        let system = Principal { subject: queue.owner.clone().unwrap_or_else(|| "system".into()) };
        self.publish(&system, copy).await?;
        Ok(true)
    }
}
