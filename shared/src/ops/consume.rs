//! Consuming: lease records to a consumer of a group, long-polling when none
//! is ready. Leased records are screened first (`screening`): those past their
//! TTL or their group's delivery limit are dead-lettered or dropped instead.

use std::time::{Duration, Instant};

use super::{Service, recent::Recent};
use crate::{
    auth::Principal,
    domain::{Latency, MessageId, Op, QueueName, Timestamp},
    error::{Error, Result},
    ports::{AcquireRequest, GroupRef, Lease, Queue, QueueId, Record},
};

/// How often one process writes that a consumer is still consuming from a queue.
const SEEN_EVERY: Duration = Duration::from_secs(10);
/// Consumers remembered before the memory of who was seen starts over.
const SEEN_KEPT: usize = 10_000;

/// When this process last wrote that a consumer of a group consumed from a queue.
#[derive(Debug)]
pub(super) struct Seen(Recent<(QueueId, String, String), ()>);

impl Default for Seen {
    fn default() -> Self {
        Self(Recent::new(SEEN_EVERY, SEEN_KEPT))
    }
}

impl Seen {
    /// Whether it is time to write it again; notes that it is being written.
    fn due(&self, key: (QueueId, String, String)) -> bool {
        if self.0.get(&key).is_some() {
            return false;
        }
        self.0.put(key, Instant::now(), ());
        true
    }
}

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
        let outcome = self.consume_waiting(caller, &cmd).await;
        self.record_outcome(Op::Consume, self.known_queue_id(&cmd.queue), &outcome);
        outcome
    }

    async fn consume_waiting(&self, caller: &Principal, cmd: &Consume) -> Result<Vec<Delivered>> {
        let queue = self.existing_queue(&cmd.queue).await?;
        super::check_access(caller, &queue)?;
        let max = self.consumer_allowance(&queue, cmd).await?;
        let deadline = tokio::time::Instant::now() + cmd.wait;
        let wakeup = self.wakeups.of(queue.id);
        let stopping = self.stopping.wait();
        tokio::pin!(stopping);
        loop {
            let notified = wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let started = std::time::Instant::now();
            let delivered = self.lease_once(&queue, cmd, max).await?;
            if !delivered.is_empty() {
                self.record_latency(queue.id, Latency::Consume, started.elapsed());
            }
            let now = tokio::time::Instant::now();
            if !delivered.is_empty() || now >= deadline || self.stopping.is_stopping() {
                return Ok(delivered);
            }
            let nap = Duration::from_millis(self.config.recheck_ms).min(deadline - now);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
                () = &mut stopping => return Ok(Vec::new()),
            }
        }
    }

    async fn lease_once(&self, queue: &Queue, cmd: &Consume, max: u32) -> Result<Vec<Delivered>> {
        let now = self.now();
        let (read, partitions, remembered) = match self.backlog.get(queue.id, &cmd.group) {
            Some((read, partitions)) => (read, partitions, true),
            None => (Instant::now(), self.log.partitions(queue.id).await?, false),
        };
        let mut request = AcquireRequest {
            queue: queue.id,
            group: cmd.group.clone(),
            consumer: cmd.consumer.clone(),
            max,
            lease_ms: cmd.lease_ms.unwrap_or(self.config.visibility_timeout_ms),
            now,
            partitions,
            per_partition: None,
        };
        let mut acquired = self.acquire_counted(&request).await?;
        if remembered && acquired.leases.len() < max as usize {
            // Short against remembered ends: lease the rest against the log's ends now.
            request.partitions = self.log.partitions(queue.id).await?;
            request.max = max - acquired.leases.len() as u32;
            acquired.extend(self.acquire_counted(&request).await?);
        }
        let full = acquired.leases.len() >= max as usize;
        self.backlog.note(queue.id, &cmd.group, read, &request.partitions, full);
        if let GroupRef::Consumers(group) = &cmd.group {
            self.note_seen(queue.id, group, &cmd.consumer, now).await;
        }
        let ready = self.screen_leases(queue, &cmd.group, None, acquired).await?;
        Ok(ready
            .into_iter()
            .map(|(id, record, lease)| Delivered { id, queue: queue.name.clone(), record, lease })
            .collect())
    }

    /// Notes that a consumer consumed from a queue, at most once per [`SEEN_EVERY`] per process.
    async fn note_seen(&self, queue: QueueId, group: &str, consumer: &str, now: Timestamp) {
        if !self.seen.due((queue, group.to_owned(), consumer.to_owned())) {
            return;
        }
        if let Err(e) = self.registry.seen(queue, group, consumer, now).await {
            tracing::warn!(queue, group, consumer, "consumer activity not written: {e}");
        }
    }

    /// How many records this call may lease: the request's `max`, within a registered consumer's limits.
    async fn consumer_allowance(&self, queue: &Queue, cmd: &Consume) -> Result<u32> {
        let GroupRef::Consumers(group) = &cmd.group else { return Ok(cmd.max) };
        let Some(registered) = self.registration(group, &cmd.consumer).await? else { return Ok(cmd.max) };
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
            let held = self.leases.leased_by(queue.id, &cmd.group, &cmd.consumer, now).await?;
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
            let granted = self.limiter.take_tokens(group, &cmd.consumer, max, rate, now).await?;
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
