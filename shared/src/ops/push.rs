//! Push delivery of a batch: each item is POSTed to its subscription's callback
//! (concurrently, bounded), all are awaited, and each is settled by its outcome:
//! acknowledged, scheduled for a retry in the lease store, or dead-lettered after
//! its last retry. Nothing sleeps, so the same function serves the local server's
//! loop and a function invoked with a batch of records.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{Service, dead_letter::Unsuccessful, screening::over_limit};
use crate::{
    dispatch::{self, Attempt, Callbacks},
    domain::{Count, Latency, MessageId, Timestamp},
    error::{Error, Result},
    ports::{
        AttemptRecord, DropCause, FailureRun, GroupRef, Lease, Queue, Record, SettleRequest, Settlement, Subscription,
    },
};

/// Failed attempts in a row before a subscription may be paused automatically.
const AUTO_PAUSE_FAILURES: u64 = 5;

/// One message leased to one subscription, to push.
#[derive(Debug, Clone)]
pub struct PushItem {
    pub queue: Queue,
    pub subscription: Arc<Subscription>,
    pub id: MessageId,
    pub record: Record,
    pub lease: Lease,
}

/// What became of one item.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    Delivered,
    /// The attempt failed; the lease store delivers it again from this time.
    RetryAt(Timestamp),
    /// The last retry failed: it was dead-lettered, or dropped without a dead-letter queue.
    GaveUp {
        dead_lettered: bool,
    },
    /// Settled by another delivery meanwhile (its lease had lapsed): nothing to do here.
    Superseded,
    /// The bookkeeping failed; the lease lapses and the message is pushed again.
    Failed(String),
}

/// How the reason of a subscription paused for failing every attempt begins.
pub(super) const AUTO_PAUSED: &str = "paused automatically";

impl Service {
    /// Pushes every item, at most `concurrency` at once, and answers each one's outcome, in order.
    pub async fn deliver_batch(
        &self,
        callbacks: &Callbacks,
        items: Vec<PushItem>,
        concurrency: usize,
    ) -> Vec<PushOutcome> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let tasks: Vec<_> = items
            .into_iter()
            .map(|item| {
                let (service, callbacks, permits) = (self.clone(), callbacks.clone(), permits.clone());
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    service.push_one(&callbacks, &item).await
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(match task.await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => PushOutcome::Failed(e.to_string()),
                Err(e) => PushOutcome::Failed(format!("push task failed: {e}")),
            });
        }
        outcomes
    }

    /// One attempt, recorded, then settled by its result.
    async fn push_one(&self, callbacks: &Callbacks, item: &PushItem) -> Result<PushOutcome> {
        let (sub, lease) = (&item.subscription, item.lease);
        let group = GroupRef::Subscription(sub.id.clone());
        let attempt = callbacks.deliver(sub, item.id, &item.record, lease.delivery_count, self.now()).await;
        tracing::debug!(
            queue = %item.queue.name,
            subscription = %sub.id,
            message_id = %item.id,
            status = ?attempt.status,
            "push attempt"
        );
        self.record(item.queue.id, |f| {
            f.add(Count::PushAttempts, 1);
            f.add(Count::PushFailures, u64::from(!attempt.delivered()));
        });
        self.record_latency(item.queue.id, Latency::Push, attempt.latency);
        crate::telemetry::pushed(&item.queue, attempt.delivered());
        let run = self.push.record_attempt(&self.attempt_record(item, &group, &attempt)).await?;
        self.pause_if_failing(sub, run).await?;
        let settle = |settlement, reason: Option<&str>| SettleRequest {
            reason: reason.map(str::to_owned),
            ..SettleRequest::new(item.id, &group, settlement, self.now(), Some(lease.delivery_count))
        };
        if attempt.delivered() {
            return Ok(match self.settle_counted(&settle(Settlement::Acknowledge, None)).await? {
                Ok(_) => {
                    self.record_end_to_end(item.queue.id, item.record.published_at, self.now());
                    PushOutcome::Delivered
                }
                Err(_) => PushOutcome::Superseded,
            });
        }
        let reason = failure(&attempt);
        if over_limit(lease.delivery_count + 1, sub.retry_policy.max_retries + 1) {
            let u = Unsuccessful {
                handed_out: true,
                queue: &item.queue,
                group: &group,
                id: item.id,
                record: Some(&item.record),
                delivery_count: lease.delivery_count,
                cause: DropCause::DeliveryLimit,
                reason: &reason,
            };
            return Ok(match self.finish_unsuccessfully(u).await? {
                Ok(d) => PushOutcome::GaveUp { dead_lettered: d.state == crate::ports::DeliveryState::DeadLettered },
                Err(_) => PushOutcome::Superseded,
            });
        }
        let jitter = f64::from(item.id.offset as u32 % 1000) / 1000.0;
        let policy = &sub.retry_policy;
        let wait = attempt.retry_after.unwrap_or_else(|| {
            dispatch::backoff(policy.retry_delay, policy.backoff_multiplier, lease.delivery_count, jitter)
        });
        let at = self.now().plus_ms(wait.as_millis() as u64);
        Ok(match self.settle_counted(&settle(Settlement::Release { at }, Some(&reason))).await? {
            Ok(_) => PushOutcome::RetryAt(at),
            Err(_) => PushOutcome::Superseded,
        })
    }

    fn attempt_record(&self, item: &PushItem, group: &GroupRef, attempt: &Attempt) -> AttemptRecord {
        AttemptRecord {
            queue: item.queue.id,
            group: group.clone(),
            partition: item.id.partition,
            offset: item.id.offset,
            at: self.now(),
            status: attempt.status,
            latency_ms: attempt.latency.as_millis() as u64,
            error: attempt.error.clone(),
        }
    }

    /// Pauses a subscription whose callback has failed every attempt for long enough.
    async fn pause_if_failing(&self, sub: &Subscription, run: FailureRun) -> Result<()> {
        let Some(since) = run.since else { return Ok(()) };
        let failing_for = self.now().0 - since.0;
        if run.failures < AUTO_PAUSE_FAILURES || failing_for < self.config.auto_pause_after_ms as i64 {
            return Ok(());
        }
        let Some(mut current) = self.meta.subscription(&sub.id).await? else { return Ok(()) };
        // A run counts from the last change of the subscription (a resume, say) at the earliest: an
        // attempt that was in flight when it was resumed does not pause it again at once.
        let since = since.max(current.updated_at);
        if !current.is_active() || self.now().0 - since.0 < self.config.auto_pause_after_ms as i64 {
            return Ok(());
        }
        current.status = crate::ports::SubscriptionStatus::Paused;
        current.paused_reason =
            Some(format!("{AUTO_PAUSED}: {} failed attempts in a row since {}", run.failures, since.to_rfc3339()));
        current.updated_at = self.now();
        tracing::warn!(
            queue_id = current.queue_id,
            subscription = %sub.id,
            "{}",
            current.paused_reason.as_deref().unwrap_or_default()
        );
        self.meta.update_subscription(&current).await.map_err(Error::from)
    }
}

fn failure(a: &Attempt) -> String {
    match (a.status, &a.error) {
        (Some(status), _) => format!("callback answered {status}"),
        (None, Some(e)) => format!("callback failed: {e}"),
        (None, None) => "callback failed".into(),
    }
}
