//! Consuming: lease records to a consumer of a group, long-polling when none
//! is ready. Records past their TTL or their group's delivery limit are
//! dead-lettered (or dropped) here instead of being handed out.

use std::time::Duration;

use super::{Service, dead_letter::Unsuccessful};
use crate::{
    auth::Principal,
    domain::{MessageId, QueueName, Timestamp},
    error::{Error, Result},
    ports::{AcquireRequest, DropCause, GroupRef, Lease, Queue, Record},
};

/// How often a waiting consumer re-checks for records other processes published.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// A consume request, already validated.
#[derive(Debug, Clone)]
pub struct Consume {
    pub queue: QueueName,
    pub group: GroupRef,
    pub consumer: String,
    pub max: u32,
    /// How long to wait for a record when none is ready.
    pub wait: Duration,
    /// Lease length; the configured visibility timeout when `None`.
    pub lease_ms: Option<u64>,
}

/// A record leased to the caller.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub id: MessageId,
    pub queue: QueueName,
    pub record: Record,
    pub lease: Lease,
}

impl Service {
    /// Leases up to `max` records, waiting up to `wait` for the first; an empty list is not an error.
    pub async fn consume(&self, caller: &Principal, cmd: Consume) -> Result<Vec<Delivered>> {
        let queue = self.existing_queue(&cmd.queue).await?;
        super::check_access(caller, &queue)?;
        let max = self.consumer_allowance(&queue, &cmd).await?;
        let deadline = tokio::time::Instant::now() + cmd.wait;
        let wakeup = self.wakeups.of(queue.id);
        let stopping = self.stopping.wait();
        tokio::pin!(stopping);
        loop {
            let notified = wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let started = std::time::Instant::now();
            let delivered = self.lease_once(&queue, &cmd, max).await?;
            if !delivered.is_empty() {
                self.metrics.record_consume(queue.id, started.elapsed());
            }
            let now = tokio::time::Instant::now();
            if !delivered.is_empty() || now >= deadline || self.stopping.is_stopping() {
                return Ok(delivered);
            }
            let nap = POLL_EVERY.min(deadline - now);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
                () = &mut stopping => return Ok(Vec::new()),
            }
        }
    }

    async fn lease_once(&self, queue: &Queue, cmd: &Consume, max: u32) -> Result<Vec<Delivered>> {
        let now = self.now();
        let request = AcquireRequest {
            queue: queue.id,
            group: cmd.group.clone(),
            consumer: cmd.consumer.clone(),
            max,
            lease_ms: cmd.lease_ms.unwrap_or(self.config.visibility_timeout_ms),
            now,
            partitions: self.log.partitions(queue.id).await?,
            per_partition: None,
        };
        let leases = self.delivery.acquire(&request).await?;
        let limit = self.delivery_limit(queue, &cmd.group).await?;
        let mut delivered = Vec::with_capacity(leases.len());
        for lease in leases {
            let id = MessageId { queue_id: queue.id, partition: lease.partition, offset: lease.offset };
            let record = self.log.read(id).await?;
            let (cause, reason) = match &record {
                None => (DropCause::Expired, "removed by retention".to_owned()),
                Some(r) if r.expires_at() <= now => (DropCause::Expired, "ttl passed".to_owned()),
                Some(_) if lease.delivery_count > limit => {
                    (DropCause::DeliveryLimit, format!("delivered {limit} times without being acknowledged"))
                }
                Some(r) => {
                    delivered.push(Delivered { id, queue: queue.name.clone(), record: r.clone(), lease });
                    continue;
                }
            };
            let u = Unsuccessful {
                handed_out: false,
                queue,
                group: &cmd.group,
                id,
                record: record.as_ref(),
                delivery_count: lease.delivery_count,
                cause,
                reason: &reason,
            };
            // A refusal means another delivery superseded this one; it is that one's to finish.
            let _ = self.finish_unsuccessfully(u).await?;
        }
        Ok(delivered)
    }

    /// How many records this call may lease: the request's `max`, within a registered consumer's limits.
    async fn consumer_allowance(&self, queue: &Queue, cmd: &Consume) -> Result<u32> {
        let GroupRef::Consumers(group) = &cmd.group else { return Ok(cmd.max) };
        let Some(registered) = self.delivery.consumer(group, &cmd.consumer).await? else { return Ok(cmd.max) };
        if !registered.topics.iter().any(|t| t == queue.name.as_str()) {
            return Err(Error::Forbidden {
                reason: format!(
                    "consumer {} of group {group} is registered for topics {:?}, not {}",
                    cmd.consumer, registered.topics, queue.name
                ),
            });
        }
        let now = self.now();
        let mut max = cmd.max;
        if let Some(cap) = registered.max_concurrency {
            let held = self.delivery.leased_by(queue.id, &cmd.group, &cmd.consumer, now).await?;
            let room = u64::from(cap).saturating_sub(held);
            if room == 0 {
                return Err(Error::RateLimited {
                    limit: u64::from(cap),
                    remaining: 0,
                    reset_time: now,
                    reason: format!("consumer holds {held} unacknowledged messages; max_concurrency is {cap}"),
                });
            }
            max = max.min(u32::try_from(room).unwrap_or(u32::MAX));
        }
        if let Some(rate) = registered.rate_limit {
            let granted = self.delivery.take_tokens(group, &cmd.consumer, max, rate, now).await?;
            if granted == 0 {
                return Err(Error::RateLimited {
                    limit: u64::from(rate),
                    remaining: 0,
                    reset_time: Timestamp(now.0 + 1000 / i64::from(rate.max(1))),
                    reason: format!("consumer may take {rate} messages per second"),
                });
            }
            max = granted;
        }
        Ok(max)
    }
}
