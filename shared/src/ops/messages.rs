//! Reading a message back by id: the id locates the record in the log; its
//! state in each group comes from the lease store, its push attempts from the push log.

use super::Service;
use crate::{
    auth::Principal,
    domain::{MessageId, Timestamp},
    error::{Error, Result},
    ports::{AttemptRecord, Delivery, DeliveryState, Queue, Record},
};

/// Where a message is in its life, in order of progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageStatus {
    /// In the log, not yet handed out.
    Published,
    /// Leased to a consumer.
    Delivered,
    /// Waiting to be delivered again.
    Requeued,
    /// Its TTL passed before it was finished.
    Expired,
    Rejected,
    DeadLettered,
    Acknowledged,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Delivered => "delivered",
            Self::Requeued => "requeued",
            Self::Expired => "expired",
            Self::Rejected => "rejected",
            Self::DeadLettered => "dead_lettered",
            Self::Acknowledged => "acknowledged",
        }
    }

    /// The status of one group's delivery.
    pub fn of(d: &Delivery) -> Self {
        match d.state {
            DeliveryState::Leased => Self::Delivered,
            DeliveryState::Available => Self::Requeued,
            DeliveryState::Acknowledged => Self::Acknowledged,
            DeliveryState::Rejected => Self::Rejected,
            DeliveryState::DeadLettered => Self::DeadLettered,
            DeliveryState::Expired => Self::Expired,
        }
    }
}

/// A message with its queue and its state in every group.
#[derive(Debug, Clone)]
pub struct MessageView {
    pub id: MessageId,
    pub queue: Queue,
    pub record: Record,
    /// The furthest state across groups.
    pub status: MessageStatus,
    pub deliveries: Vec<Delivery>,
    /// Push attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
}

impl MessageView {
    /// When it was first handed out to any group.
    pub fn consumed_at(&self) -> Option<Timestamp> {
        self.deliveries.iter().filter_map(|d| d.first_delivered_at).min()
    }

    /// When the last group acknowledged it.
    pub fn acknowledged_at(&self) -> Option<Timestamp> {
        let acked = self.deliveries.iter().filter(|d| d.state == DeliveryState::Acknowledged);
        acked.filter_map(|d| d.finished_at).max()
    }

    /// Most requeues in any group.
    pub fn retry_count(&self) -> u32 {
        self.deliveries.iter().map(|d| d.retry_count).max().unwrap_or(0)
    }

    /// Most redeliveries in any group.
    pub fn redelivery_count(&self) -> u32 {
        self.deliveries.iter().map(|d| d.delivery_count.saturating_sub(1)).max().unwrap_or(0)
    }
}

/// Most messages one peek answers.
const MAX_PEEK: u32 = 100;

impl Service {
    /// The newest `limit` messages of a queue, newest first, read without delivering them.
    pub async fn latest_messages(
        &self,
        caller: &Principal,
        name: &crate::domain::QueueName,
        limit: u32,
    ) -> Result<(Queue, Vec<(MessageId, Record)>)> {
        if !(1..=MAX_PEEK).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be 1 to {MAX_PEEK}")));
        }
        let queue = self.existing_queue(name).await?;
        super::check_access(caller, &queue)?;
        let mut found = Vec::new();
        for p in self.log.partitions(queue.id).await? {
            let from = p.end_offset.saturating_sub(u64::from(limit)).max(p.start_offset);
            let read_limit = crate::ports::ReadLimit { records: limit, bytes: 16 << 20 };
            for (offset, record) in self.log.read_range(queue.id, p.partition, from, read_limit).await? {
                found.push((MessageId { queue_id: queue.id, partition: p.partition, offset }, record));
            }
        }
        found.sort_by_key(|(id, r)| std::cmp::Reverse((r.published_at, id.offset, id.partition)));
        found.truncate(limit as usize);
        Ok((queue, found))
    }

    /// The message with that id; ids that do not parse are unknown ids.
    pub async fn message(&self, caller: &Principal, id_text: &str) -> Result<MessageView> {
        let not_found = || Error::MessageNotFound { message_id: id_text.to_owned() };
        let id = MessageId::parse(id_text).ok_or_else(not_found)?;
        let queue = self.queue_by_id(id.queue_id).await?.ok_or_else(not_found)?;
        super::check_access(caller, &queue)?;
        let record = self.log.read(id).await?.ok_or_else(not_found)?;
        let deliveries = self.leases.deliveries(id.queue_id, id.partition, id.offset).await?;
        let furthest = deliveries.iter().map(MessageStatus::of).max().unwrap_or(MessageStatus::Published);
        let expired = record.expires_at() <= self.now() && furthest < MessageStatus::Expired;
        let status = if expired { MessageStatus::Expired } else { furthest };
        let attempts = self.push.attempts(id.queue_id, id.partition, id.offset).await?;
        Ok(MessageView { id, queue, record, status, deliveries, attempts })
    }
}
