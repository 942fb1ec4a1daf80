//! Queue counters follow what the lease store did: each acquire and each
//! applied settlement adds its change. A counter that cannot be written is
//! logged, never failed: the lease or settlement it counts has happened.

use super::Service;
use crate::{
    domain::Count,
    error::Result,
    ports::{
        AcquireRequest, Acquired, CounterDelta, Delivery, DropCause, QueueId, SettleRefusal, SettleRequest, Settlement,
    },
};

impl Service {
    /// Leases through the store, counting what it handed out and what retention took first.
    pub(super) async fn acquire_counted(&self, req: &AcquireRequest) -> Result<Acquired> {
        let acquired = self.leases.acquire(req).await?;
        let delta = CounterDelta {
            consumed: acquired.leases.len() as i64,
            redelivered: acquired.leases.iter().filter(|l| l.delivery_count > 1).count() as i64,
            expired: acquired.skipped as i64,
            ..CounterDelta::default()
        };
        self.count(req.queue, delta).await;
        Ok(acquired)
    }

    /// Settles through the store, counting the change when it was applied.
    pub(super) async fn settle_counted(
        &self,
        req: &SettleRequest,
    ) -> Result<std::result::Result<Delivery, SettleRefusal>> {
        let outcome = self.leases.settle(req).await?;
        if outcome.is_ok() {
            self.count(req.queue, settled(req.settlement)).await;
        }
        Ok(outcome)
    }

    /// Takes back the count of a lease (its `delivery_count`-th delivery) that was screened out,
    /// never handed to anyone.
    pub(super) async fn uncount_lease(&self, queue: QueueId, delivery_count: u32) {
        let delta =
            CounterDelta { consumed: -1, redelivered: -i64::from(delivery_count > 1), ..CounterDelta::default() };
        self.count(queue, delta).await;
    }

    async fn count(&self, queue: QueueId, delta: CounterDelta) {
        let name = || self.queue_label(queue);
        crate::telemetry::counted(queue, name, &delta);
        self.record(queue, |f| {
            for (count, by) in figure_counts(&delta) {
                f.change(count, by);
            }
        });
        if let Err(e) = self.stats.add(queue, &delta).await {
            tracing::warn!(queue = %name(), "a counter was not written: {e}");
        }
    }
}

/// What an applied settlement adds to the counters.
fn settled(settlement: Settlement) -> CounterDelta {
    let mut delta = CounterDelta::default();
    match settlement {
        Settlement::Acknowledge => delta.acknowledged = 1,
        Settlement::Release { .. } => delta.requeued = 1,
        Settlement::Extend { .. } | Settlement::Hold { .. } => {}
        Settlement::Drop { cause, dead_lettered } => {
            match cause {
                DropCause::Rejected => delta.rejected = 1,
                DropCause::Expired => delta.expired = 1,
                DropCause::DeliveryLimit => {}
            }
            delta.dead_lettered = i64::from(dead_lettered);
        }
    }
    delta
}

/// The figures' counts a counter change moves.
fn figure_counts(d: &CounterDelta) -> [(Count, i64); 7] {
    [
        (Count::Consumed, d.consumed),
        (Count::Redelivered, d.redelivered),
        (Count::Acknowledged, d.acknowledged),
        (Count::Rejected, d.rejected),
        (Count::Requeued, d.requeued),
        (Count::DeadLettered, d.dead_lettered),
        (Count::Expired, d.expired),
    ]
}
