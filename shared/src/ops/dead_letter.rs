//! Finishing a record without success. With a dead-letter queue, the record is
//! first held (a conditional write, so only the current delivery proceeds),
//! then copied to the dead-letter queue, then settled; a crash in between
//! lets the hold lapse and the record is delivered again, never lost.

use serde_json::{Value, json};

use super::Service;
use crate::{
    auth::Principal,
    domain::{MessageId, QueueName},
    error::Result,
    ports::{Delivery, DropCause, GroupRef, Queue, Record, SettleRefusal, SettleRequest, Settlement},
};

/// How long a record is held while its copy is written to the dead-letter queue.
const HOLD_MS: u64 = 60_000;

/// One record of one group to finish without success.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unsuccessful<'a> {
    pub queue: &'a Queue,
    pub group: &'a GroupRef,
    pub id: MessageId,
    /// `None` when retention already removed it: nothing to copy.
    pub record: Option<&'a Record>,
    /// The delivery this applies to.
    pub delivery_count: u32,
    pub cause: DropCause,
    pub reason: &'a str,
    /// Whether the delivery reached a consumer or callback (false: screened out after leasing).
    pub handed_out: bool,
}

impl Service {
    /// The dead-letter queue of a group: its subscription's, else the queue's `x-dead-letter-queue`.
    pub(super) async fn dead_letter_queue_of(&self, queue: &Queue, group: &GroupRef) -> Result<Option<QueueName>> {
        if let GroupRef::Subscription(id) = group
            && let Some(dlq) = self.meta.subscription(id).await?.and_then(|s| s.dead_letter_queue)
        {
            return Ok(Some(dlq));
        }
        Ok(queue.settings.arguments.dead_letter_queue.clone())
    }

    /// Deliveries a group gets before a record is dead-lettered.
    pub(super) async fn delivery_limit(&self, queue: &Queue, group: &GroupRef) -> Result<u32> {
        if let GroupRef::Subscription(id) = group
            && let Some(sub) = self.meta.subscription(id).await?
        {
            return Ok(sub.retry_policy.max_retries + 1);
        }
        Ok(queue.settings.arguments.delivery_limit.unwrap_or(self.config.max_deliveries))
    }

    /// Dead-letters (or drops) one delivery; refused when it is no longer the current one.
    pub(super) async fn finish_unsuccessfully(&self, u: Unsuccessful<'_>) -> Result<Result<Delivery, SettleRefusal>> {
        let dlq = match u.record {
            Some(_) => self.dead_letter_queue_of(u.queue, u.group).await?.filter(|d| d != &u.queue.name),
            None => None,
        };
        if let (Some(dlq), Some(record)) = (&dlq, u.record) {
            let hold = Settlement::Hold { until: self.now().plus_ms(HOLD_MS) };
            if let Err(refused) = self.settle_counted(&self.request(&u, hold)).await? {
                return Ok(Err(refused));
            }
            self.publish(&system(u.queue), dead_letter_copy(dlq.clone(), &u, record, self.now())).await?;
        }
        let drop = Settlement::Drop { cause: u.cause, dead_lettered: dlq.is_some() };
        let outcome = self.settle_counted(&self.request(&u, drop)).await?;
        if outcome.is_ok() && !u.handed_out {
            self.uncount_lease(u.queue.id, u.delivery_count).await;
        }
        Ok(outcome)
    }

    fn request(&self, u: &Unsuccessful<'_>, settlement: Settlement) -> SettleRequest {
        SettleRequest {
            reason: Some(u.reason.to_owned()),
            ..SettleRequest::new(u.id, u.group, settlement, self.now(), Some(u.delivery_count))
        }
    }
}

/// Dead-letter copies are published as the queue's owner, so an exclusive queue's copies are allowed.
fn system(queue: &Queue) -> Principal {
    Principal { subject: queue.owner.clone().unwrap_or_else(|| "system".into()) }
}

/// The copy: the same message, with headers saying where it came from and why.
fn dead_letter_copy(
    dlq: QueueName,
    u: &Unsuccessful<'_>,
    record: &Record,
    now: crate::domain::Timestamp,
) -> super::Publish {
    let mut headers = record.headers.clone();
    let death = json!({
        "x-dead-letter-reason": u.cause.as_str(),
        "x-dead-letter-detail": u.reason,
        "x-original-queue": u.queue.name,
        "x-original-message-id": u.id.to_string(),
        "x-dead-letter-group": u.group.name(),
        "x-delivery-count": u.delivery_count,
        "x-dead-lettered-at": now,
    });
    if let Value::Object(death) = death {
        headers.extend(death);
    }
    super::Publish {
        queue: dlq,
        key: record.key.clone(),
        routing_key: record.routing_key.clone(),
        content: record.content.clone(),
        headers,
        priority: record.priority,
        ttl_ms: None,
        persistent: true,
    }
}
