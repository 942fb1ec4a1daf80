//! The one rule for what happens to a leased record before anyone gets it:
//! consume, push and dead-lettering all screen here.

use super::{Service, dead_letter::Unsuccessful};
use crate::{
    domain::{MessageId, Timestamp},
    error::Result,
    ports::{Acquired, DropCause, GroupRef, Lease, Queue, Record, SettleRequest, Settlement, Subscription},
};

/// What to do with a leased record.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
    Deliver,
    /// Not for this group (a subscription whose pattern or headers do not select it):
    /// finished for it without a delivery.
    NotSelected,
    /// Finished without success: dead-lettered, or dropped.
    Finish {
        cause: DropCause,
        reason: String,
    },
}

/// Screens a leased record: gone or past its TTL, not selected by the subscription, or over
/// the group's delivery limit (`limit` deliveries allowed).
pub(super) fn screen(
    record: Option<&Record>,
    delivery_count: u32,
    limit: u32,
    subscription: Option<&Subscription>,
    now: Timestamp,
) -> Verdict {
    let finish = |cause, reason: &str| Verdict::Finish { cause, reason: reason.to_owned() };
    match record {
        None => finish(DropCause::Expired, "removed by retention"),
        Some(r) if r.expires_at() <= now => finish(DropCause::Expired, "ttl passed"),
        Some(r) if subscription.is_some_and(|s| !s.selects(r.routing_key.as_deref(), &r.headers)) => {
            Verdict::NotSelected
        }
        Some(_) if over_limit(delivery_count, limit) => {
            finish(DropCause::DeliveryLimit, &format!("delivered {limit} times without being acknowledged"))
        }
        Some(_) => Verdict::Deliver,
    }
}

/// Whether a record delivered `delivery_count` times has used up a limit of `limit` deliveries.
pub(super) fn over_limit(delivery_count: u32, limit: u32) -> bool {
    delivery_count > limit
}

impl Service {
    /// Reads the leased records, screens each, finishes those nobody is to get, and answers
    /// the rest with their records.
    pub(super) async fn screen_leases(
        &self,
        queue: &Queue,
        group: &GroupRef,
        subscription: Option<&Subscription>,
        acquired: Acquired,
    ) -> Result<Vec<(MessageId, Record, Lease)>> {
        let leases = acquired.leases;
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let limit = self.delivery_limit(queue, group).await?;
        let records = match acquired.records {
            Some(records) => records,
            None => self.read_leased(queue.id, &leases).await?,
        };
        let mut ready = Vec::with_capacity(leases.len());
        // The leases the store's counters keep as consumed: all but those finished unhanded.
        let (mut consumed, mut redelivered) = (0, 0);
        for (lease, record) in leases.into_iter().zip(records) {
            let id = MessageId { queue_id: queue.id, partition: lease.partition, offset: lease.offset };
            let verdict = screen(record.as_ref(), lease.delivery_count, limit, subscription, now);
            if !matches!(verdict, Verdict::Finish { .. }) {
                consumed += 1;
                redelivered += u64::from(lease.delivery_count > 1);
            }
            match verdict {
                Verdict::Deliver => {
                    let record = record.expect("screened in");
                    self.handed_out.remember(id, record.published_at);
                    ready.push((id, record, lease))
                }
                Verdict::NotSelected => {
                    let request = SettleRequest {
                        reason: Some("not selected by the subscription's routing_key or match_headers".into()),
                        ..SettleRequest::new(id, group, Settlement::Acknowledge, now, Some(lease.delivery_count))
                    };
                    // A refusal means the lease lapsed and a later pass took it: that pass settles it.
                    let _ = self.settle_counted(&request).await?;
                }
                Verdict::Finish { cause, reason } => {
                    let u = Unsuccessful {
                        handed_out: false,
                        queue,
                        group,
                        id,
                        record: record.as_ref(),
                        delivery_count: lease.delivery_count,
                        cause,
                        reason: &reason,
                    };
                    // A refusal means another delivery superseded this one; it is that one's to finish.
                    let _ = self.finish_unsuccessfully(u).await?;
                }
            }
        }
        crate::telemetry::consumed(queue, consumed, redelivered);
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Content;

    fn record(ttl_ms: u64, routing_key: Option<&str>) -> Record {
        Record {
            key: None,
            routing_key: routing_key.map(str::to_owned),
            content: Content::Text("x".into()),
            headers: Default::default(),
            priority: None,
            ttl_ms,
            persistent: true,
            published_at: Timestamp(1_000),
        }
    }

    #[test]
    fn gone_expired_and_over_limit_records_are_finished_in_that_order() {
        let now = Timestamp(2_000);
        let expired = |v: &Verdict| matches!(v, Verdict::Finish { cause: DropCause::Expired, .. });
        assert!(expired(&screen(None, 1, 10, None, now)));
        assert!(expired(&screen(Some(&record(1_000, None)), 99, 10, None, now)), "expiry comes before the limit");
        let limit = screen(Some(&record(60_000, None)), 11, 10, None, now);
        assert!(matches!(limit, Verdict::Finish { cause: DropCause::DeliveryLimit, .. }));
        assert_eq!(screen(Some(&record(60_000, None)), 10, 10, None, now), Verdict::Deliver);
    }
}
