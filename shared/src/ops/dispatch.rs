//! The dispatcher's bookkeeping: lease each active subscription's records up
//! to its prefetch, skip those its routing pattern does not select, deliver
//! the rest, and settle each by its outcome. Retries are scheduled in the
//! store (a requeue with a delay), never slept on.

use std::time::Duration;

use super::{Service, dead_letter::Unsuccessful};
use crate::{
    dispatch::{self, Attempt, Callbacks},
    domain::{MessageId, Timestamp},
    error::Result,
    ports::{
        AcquireRequest, AttemptRecord, DropCause, FailureRun, GroupRef, Lease, Queue, Record, SettleRequest,
        Settlement, Subscription,
    },
    routing::HeaderMatch,
};

/// A leased message the subscription is to get.
type Next = (MessageId, Record, Lease);

/// The consumer name the dispatcher leases under.
const DISPATCHER: &str = "dispatcher";
/// Failed attempts in a row before a subscription may be paused automatically.
const AUTO_PAUSE_FAILURES: u64 = 5;
/// Longest retry wait a partition's worker sleeps through; longer ones are left to a later pass.
const MAX_WAIT_IN_WORKER: Duration = Duration::from_secs(5);
/// A delivery's lease beyond its timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

impl Service {
    /// One pass over every active subscription; starts deliveries and answers how many.
    pub async fn dispatch_pass(&self, callbacks: &Callbacks) -> Result<usize> {
        let mut started = 0;
        let active: Vec<Subscription> =
            self.meta.subscriptions(None).await?.into_iter().filter(|s| s.status == "active").collect();
        self.wakeups.set_subscribed(active.iter().map(|s| s.queue_id).collect());
        for sub in active {
            let Some(queue) = self.queue_by_id(sub.queue_id).await? else { continue };
            started += self.dispatch_subscription(callbacks, &queue, sub).await?;
        }
        Ok(started)
    }

    async fn dispatch_subscription(&self, callbacks: &Callbacks, queue: &Queue, sub: Subscription) -> Result<usize> {
        let group = GroupRef::Subscription(sub.id.clone());
        let in_flight = self.delivery.leased_by(queue.id, &group, DISPATCHER, self.now()).await?;
        let room = u64::from(sub.prefetch_count).saturating_sub(in_flight);
        if room == 0 {
            return Ok(0);
        }
        // Order within a partition: the store hands out one message at a time per partition,
        // delivering or waiting for its retry; the next once it is delivered or dead-lettered.
        let partitions = self.log.partitions(queue.id).await?;
        let batch = self.take_next(queue, &sub, partitions, u32::try_from(room).unwrap_or(u32::MAX)).await?;
        let started = batch.len();
        for first in batch {
            let (service, callbacks, queue, sub) = (self.clone(), callbacks.clone(), queue.clone(), sub.clone());
            tokio::spawn(async move { service.work_partition(&callbacks, &queue, &sub, first).await });
        }
        Ok(started)
    }

    /// Delivers one partition's messages in order, for as long as deliveries succeed.
    async fn work_partition(&self, callbacks: &Callbacks, queue: &Queue, sub: &Subscription, first: Next) {
        let mut next = Some(first);
        while let Some((id, record, lease)) = next.take() {
            if !self.still_active(sub).await {
                // Paused or deleted meanwhile: the lease lapses and a later pass resumes.
                break;
            }
            let outcome = match self.deliver_one(callbacks, queue, sub, id, &record, lease).await {
                Ok(Some(retry_at)) => {
                    // The partition waits for this retry anyway (order); wait here rather than for
                    // the next pass. The retry is in the store, so a restart resumes it.
                    let wait = (retry_at.0 - self.now().0).max(0) as u64;
                    if wait > MAX_WAIT_IN_WORKER.as_millis() as u64 {
                        Ok(Vec::new())
                    } else {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        self.take_next(queue, sub, self.partition(queue, id.partition).await, 1).await
                    }
                }
                Ok(None) => self.take_next(queue, sub, self.partition(queue, id.partition).await, 1).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(mut more) => next = more.pop(),
                Err(e) => tracing::warn!(subscription = %sub.id, message = %id, "delivery bookkeeping failed: {e}"),
            }
        }
    }

    async fn still_active(&self, sub: &Subscription) -> bool {
        matches!(self.meta.subscription(&sub.id).await, Ok(Some(s)) if s.status == "active")
    }

    async fn partition(&self, queue: &Queue, partition: u32) -> Vec<crate::ports::PartitionInfo> {
        let all = self.log.partitions(queue.id).await.unwrap_or_default();
        all.into_iter().filter(|p| p.partition == partition).collect()
    }

    /// Leases up to `max` records (one per partition) and finishes at once those the
    /// subscription does not get (expired, or not selected by its pattern).
    async fn take_next(
        &self,
        queue: &Queue,
        sub: &Subscription,
        partitions: Vec<crate::ports::PartitionInfo>,
        max: u32,
    ) -> Result<Vec<Next>> {
        let group = GroupRef::Subscription(sub.id.clone());
        let now = self.now();
        let request = AcquireRequest {
            queue: queue.id,
            group: group.clone(),
            consumer: DISPATCHER.into(),
            max,
            lease_ms: self.config.callback_timeout_ms + LEASE_MARGIN.as_millis() as u64,
            now,
            partitions,
            per_partition: Some(1),
        };
        let mut out = Vec::new();
        for lease in self.delivery.acquire(&request).await? {
            let id = MessageId { queue_id: queue.id, partition: lease.partition, offset: lease.offset };
            let Some(record) = self.log.read(id).await?.filter(|r| r.expires_at() > now) else {
                let u = Unsuccessful {
                    handed_out: false,
                    queue,
                    group: &group,
                    id,
                    record: None,
                    delivery_count: lease.delivery_count,
                    cause: DropCause::Expired,
                    reason: "ttl passed",
                };
                let _ = self.finish_unsuccessfully(u).await?;
                continue;
            };
            let headers_match = sub
                .match_headers
                .as_ref()
                .and_then(|f| HeaderMatch::parse(f).ok())
                .is_none_or(|m| m.matches(&record.headers));
            if !headers_match || !sub.routing_key.matches(record.routing_key.as_deref().unwrap_or("")) {
                // Not selected by this subscription: finished for it without a delivery.
                self.settle_for(&group, id, &lease, Settlement::Acknowledge, Some("not matched by routing_key"))
                    .await?;
                continue;
            }
            out.push((id, record, lease));
        }
        Ok(out)
    }

    /// Delivers one message and settles it; answers when its retry is due, if one was scheduled.
    async fn deliver_one(
        &self,
        callbacks: &Callbacks,
        queue: &Queue,
        sub: &Subscription,
        id: MessageId,
        record: &Record,
        lease: Lease,
    ) -> Result<Option<Timestamp>> {
        let group = GroupRef::Subscription(sub.id.clone());
        let attempt = callbacks.deliver(sub, id, record, lease.delivery_count).await;
        tracing::debug!(subscription = %sub.id, message = %id, status = ?attempt.status, "delivery attempt");
        let record_of = AttemptRecord {
            queue: queue.id,
            group: group.clone(),
            partition: id.partition,
            offset: id.offset,
            at: self.now(),
            status: attempt.status,
            latency_ms: attempt.latency.as_millis() as u64,
            error: attempt.error.clone(),
        };
        let run = self.delivery.record_attempt(&record_of).await?;
        self.pause_if_failing(sub, run).await?;
        if attempt.delivered() {
            self.settle_for(&group, id, &lease, Settlement::Acknowledge, None).await?;
            return Ok(None);
        }
        let reason = failure(&attempt);
        if lease.delivery_count > sub.retry_policy.max_retries {
            let u = Unsuccessful {
                handed_out: true,
                queue,
                group: &group,
                id,
                record: Some(record),
                delivery_count: lease.delivery_count,
                cause: DropCause::DeliveryLimit,
                reason: &reason,
            };
            let _ = self.finish_unsuccessfully(u).await?;
            return Ok(None);
        }
        let jitter = f64::from(id.offset as u32 % 1000) / 1000.0;
        let wait = attempt.retry_after.unwrap_or_else(|| {
            dispatch::backoff(
                sub.retry_policy.retry_delay,
                sub.retry_policy.backoff_multiplier,
                lease.delivery_count,
                jitter,
            )
        });
        let at = self.now().plus_ms(wait.as_millis() as u64);
        self.settle_for(&group, id, &lease, Settlement::Release { at }, Some(&reason)).await?;
        Ok(Some(at))
    }

    /// Pauses a subscription whose callback has failed every attempt for long enough.
    async fn pause_if_failing(&self, sub: &Subscription, run: FailureRun) -> Result<()> {
        let Some(since) = run.since else { return Ok(()) };
        let failing_for = self.now().0 - since.0;
        if run.failures < AUTO_PAUSE_FAILURES || failing_for < self.config.auto_pause_after_ms as i64 {
            return Ok(());
        }
        let Some(mut current) = self.meta.subscription(&sub.id).await? else { return Ok(()) };
        if current.status != "active" {
            return Ok(());
        }
        current.status = "paused".into();
        current.paused_reason = Some(format!(
            "paused automatically: {} failed attempts in a row since {}",
            run.failures,
            since.to_rfc3339()
        ));
        current.updated_at = self.now().0;
        tracing::warn!(subscription = %sub.id, "{}", current.paused_reason.as_deref().unwrap_or_default());
        self.meta.update_subscription(&current).await?;
        Ok(())
    }

    async fn settle_for(
        &self,
        group: &GroupRef,
        id: MessageId,
        lease: &Lease,
        settlement: Settlement,
        reason: Option<&str>,
    ) -> Result<()> {
        let request = SettleRequest {
            reason: reason.map(str::to_owned),
            ..SettleRequest::new(id, group, settlement, self.now(), Some(lease.delivery_count))
        };
        // A refusal means the lease lapsed and another pass took the message: that pass settles it.
        let _ = self.delivery.settle(&request).await?;
        Ok(())
    }
}

fn failure(a: &Attempt) -> String {
    match (a.status, &a.error) {
        (Some(status), _) => format!("callback answered {status}"),
        (None, Some(e)) => format!("callback failed: {e}"),
        (None, None) => "callback failed".into(),
    }
}

/// Runs dispatch passes until the service stops: at once after a publish, else every 100 ms.
/// Deliveries in flight when it stops are abandoned; their leases lapse and they are sent again.
pub async fn run_dispatcher(service: Service) {
    let timeout = Duration::from_millis(service.config.callback_timeout_ms);
    let callbacks = Callbacks::new(service.config.callback_policy.clone(), service.resolver.clone(), timeout);
    let published = service.wakeups.any();
    let stopping = service.stopping.wait();
    tokio::pin!(stopping);
    loop {
        let woken = published.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Err(e) = service.dispatch_pass(&callbacks).await {
            tracing::warn!("dispatch pass failed: {e}");
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = &mut stopping => return,
        }
    }
}
