//! The local server's push loop: every pass leases each active subscription's
//! due messages, up to its free prefetch, and pushes them as a batch
//! ([`Service::deliver_batch`]). Retries wait in the lease store's schedule;
//! a later pass takes them when due.

use std::{sync::Arc, time::Duration};

use super::{PushItem, PushOutcome, Service};
use crate::{
    dispatch::Callbacks,
    error::Result,
    ports::{AcquireRequest, GroupRef, Queue, Subscription},
};

/// The consumer name the dispatcher leases under.
const DISPATCHER: &str = "dispatcher";
/// A push's lease beyond its callback timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often a pass runs when nothing wakes the loop.
const PASS_EVERY: Duration = Duration::from_millis(100);
/// Retries due within this long wake the loop at their time; later ones are found by a pass.
const MAX_RETRY_WAKE: Duration = Duration::from_secs(5);

impl Service {
    /// One pass over every active subscription; starts pushing what is due and answers how many.
    pub async fn dispatch_pass(&self, callbacks: &Callbacks) -> Result<usize> {
        let active: Vec<Subscription> =
            self.meta.subscriptions(None).await?.into_iter().filter(|s| s.is_active()).collect();
        self.wakeups.set_subscribed(active.iter().map(|s| s.queue_id).collect());
        let mut started = 0;
        for sub in active {
            let Some(queue) = self.queue_by_id(sub.queue_id).await? else { continue };
            let items = self.lease_pushes(&queue, Arc::new(sub)).await?;
            if items.is_empty() {
                continue;
            }
            started += items.len();
            let (service, callbacks) = (self.clone(), callbacks.clone());
            tokio::spawn(async move {
                let concurrency = items.len();
                let outcomes = service.deliver_batch(&callbacks, items, concurrency).await;
                // Room in the prefetch: the next pass may start more.
                service.wakeups.wake_dispatcher();
                service.wake_at_first_retry(&outcomes).await;
            });
        }
        Ok(started)
    }

    /// Wakes the loop when the first retry of a batch falls due (if soon), so a retry waits for
    /// its time and not for the next pass as well.
    async fn wake_at_first_retry(&self, outcomes: &[PushOutcome]) {
        let first =
            outcomes.iter().filter_map(|o| if let PushOutcome::RetryAt(at) = o { Some(*at) } else { None }).min();
        let Some(at) = first else { return };
        let wait = Duration::from_millis((at.0 - self.now().0).max(0) as u64);
        if wait <= MAX_RETRY_WAKE {
            tokio::time::sleep(wait).await;
            self.wakeups.wake_dispatcher();
        }
    }

    /// Leases a subscription's due messages, up to its prefetch less those in flight, and
    /// screens them: the items to push. Ordered subscriptions take one message at a time
    /// per partition, and none from a partition whose message waits for a retry.
    pub async fn lease_pushes(&self, queue: &Queue, sub: Arc<Subscription>) -> Result<Vec<PushItem>> {
        let group = GroupRef::Subscription(sub.id.clone());
        let now = self.now();
        let in_flight = self.leases.leased_by(queue.id, &group, DISPATCHER, now).await?;
        let room = u64::from(sub.prefetch_count).saturating_sub(in_flight);
        if room == 0 {
            return Ok(Vec::new());
        }
        let request = AcquireRequest {
            queue: queue.id,
            group: group.clone(),
            consumer: DISPATCHER.into(),
            max: u32::try_from(room).unwrap_or(u32::MAX),
            lease_ms: self.config.callback_timeout_ms + LEASE_MARGIN.as_millis() as u64,
            now,
            partitions: self.log.partitions(queue.id).await?,
            per_partition: sub.ordered.then_some(1),
        };
        let acquired = self.acquire_counted(&request).await?;
        let ready = self.screen_leases(queue, &group, Some(&sub), acquired).await?;
        Ok(ready
            .into_iter()
            .map(|(id, record, lease)| PushItem { queue: queue.clone(), subscription: sub.clone(), id, record, lease })
            .collect())
    }
}

/// Runs dispatch passes until the service stops: at once after a publish, else every 100 ms.
/// Pushes in flight when it stops are abandoned; their leases lapse and they are pushed again.
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
            () = tokio::time::sleep(PASS_EVERY) => {}
            () = &mut stopping => return,
        }
    }
}
