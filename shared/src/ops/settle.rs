//! Acknowledge, negative-acknowledge, reject and extend: conditional changes
//! to one record's state in one group.

use super::{Service, dead_letter::Unsuccessful};
use crate::{
    auth::Principal,
    domain::{Latency, MessageId, Op, QueueName, Timestamp},
    error::{Error, Result},
    ports::{Delivery, DeliveryState, DropCause, GroupRef, Queue, SettleRefusal, SettleRequest, Settlement},
};

/// What to do with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleKind {
    Acknowledge,
    /// Requeue for redelivery after `delay_ms`.
    Requeue {
        delay_ms: u64,
    },
    /// Reject without requeue: dead-letter, or drop when the group has no dead-letter queue.
    Reject {
        reason: Option<String>,
    },
    /// Keep the lease for `lease_ms` more from now.
    Extend {
        lease_ms: u64,
    },
}

/// Names one delivery of one message: `<message_id>.<delivery_count>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: MessageId,
    pub delivery_count: u32,
}

impl Receipt {
    pub fn parse(s: &str) -> Option<Self> {
        let (id, n) = s.rsplit_once('.')?;
        Some(Self { id: MessageId::parse(id)?, delivery_count: n.parse().ok()? })
    }
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.delivery_count)
    }
}

/// A settlement request, already validated.
#[derive(Debug, Clone)]
pub struct SettleCommand {
    pub message_id: String,
    /// The queue the caller believes the message is in (`/api/v1` `topic`).
    pub queue: Option<QueueName>,
    /// The group; may be left out when exactly one group holds the message.
    pub group: Option<GroupRef>,
    pub receipt: Option<Receipt>,
    pub kind: SettleKind,
}

/// The delivery after the change.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: MessageId,
    pub queue: Queue,
    pub delivery: Delivery,
    pub dead_lettered: bool,
    pub at: Timestamp,
}

impl Settled {
    /// Whether this settlement acknowledged the message (a repeated acknowledgement did not).
    pub fn acknowledged_now(&self) -> bool {
        self.delivery.state == DeliveryState::Acknowledged && self.delivery.finished_at == Some(self.at)
    }
}

impl Service {
    /// Applies a settlement; a repeated acknowledgement answers the first one's state.
    pub async fn settle(&self, caller: &Principal, cmd: SettleCommand) -> Result<Settled> {
        let outcome = self.settle_untimed(caller, cmd).await;
        if let Ok(settled) = &outcome
            && settled.acknowledged_now()
        {
            self.time_end_to_end(&[(settled.id, settled.at)]).await;
        }
        outcome
    }

    /// [`Self::settle`] without timing the message end to end (a batch times its messages together).
    async fn settle_untimed(&self, caller: &Principal, cmd: SettleCommand) -> Result<Settled> {
        let started = std::time::Instant::now();
        let outcome = self.settle_once(caller, &cmd).await;
        let op = match cmd.kind {
            SettleKind::Acknowledge => Op::Acknowledge,
            SettleKind::Requeue { .. } | SettleKind::Reject { .. } => Op::Reject,
            SettleKind::Extend { .. } => return outcome,
        };
        let queue = match &outcome {
            Ok(settled) => Some(settled.queue.id),
            Err(_) => MessageId::parse(&cmd.message_id).and_then(|id| self.queues.get_by_id(id.queue_id)).map(|q| q.id),
        };
        self.record_outcome(op, queue, &outcome);
        if let (Op::Acknowledge, Ok(settled)) = (op, &outcome) {
            self.record_latency(settled.queue.id, Latency::Acknowledge, started.elapsed());
        }
        outcome
    }

    async fn settle_once(&self, caller: &Principal, cmd: &SettleCommand) -> Result<Settled> {
        let not_found = || Error::MessageNotFound { message_id: cmd.message_id.clone() };
        let id = MessageId::parse(&cmd.message_id).ok_or_else(not_found)?;
        let queue = self.queue_by_id(id.queue_id).await?.ok_or_else(not_found)?;
        if cmd.queue.as_ref().is_some_and(|q| q != &queue.name) {
            return Err(not_found());
        }
        super::check_access(caller, &queue)?;
        if cmd.receipt.is_some_and(|r| r.id != id) {
            return Err(Error::invalid("receipt_handle", "belongs to another message"));
        }
        let group = match cmd.group.clone() {
            Some(g) => g,
            None => self.only_group(id, &cmd.message_id).await?,
        };
        let now = self.now();
        let conflict = |code, reason: String, state: Option<&'static str>| Error::DeliveryConflict {
            code,
            reason,
            message_id: cmd.message_id.clone(),
            group: group.name().to_owned(),
            state,
        };
        let settlement = match &cmd.kind {
            SettleKind::Acknowledge => Settlement::Acknowledge,
            SettleKind::Requeue { delay_ms } => Settlement::Release { at: now.plus_ms(*delay_ms) },
            SettleKind::Extend { lease_ms } => Settlement::Extend { until: now.plus_ms(*lease_ms) },
            SettleKind::Reject { reason } => {
                let reason = reason.as_deref().unwrap_or("rejected by the consumer");
                return self.reject(id, queue, &group, cmd.receipt, reason).await.map_err(|r| refusal(r, &conflict));
            }
        };
        let settled =
            self.apply(id, queue, &group, settlement, cmd.receipt, now).await.map_err(|r| refusal(r, &conflict))?;
        if matches!(cmd.kind, SettleKind::Requeue { .. }) {
            self.wakeups.publish(settled.queue.id);
        }
        Ok(settled)
    }

    /// Applies many settlements at once (they share the store's commits); each gets its own outcome, in order.
    pub async fn settle_many(&self, caller: &Principal, cmds: Vec<SettleCommand>) -> Vec<Result<Settled>> {
        let tasks: Vec<_> = cmds
            .into_iter()
            .map(|cmd| {
                let (service, caller) = (self.clone(), caller.clone());
                tokio::spawn(async move { service.settle_untimed(&caller, cmd).await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(
                task.await.unwrap_or_else(|e| Err(Error::Internal { reason: format!("settle task failed: {e}") })),
            );
        }
        let acknowledged: Vec<(MessageId, Timestamp)> =
            out.iter().filter_map(|r| r.as_ref().ok()).filter(|s| s.acknowledged_now()).map(|s| (s.id, s.at)).collect();
        self.time_end_to_end(&acknowledged).await;
        out
    }

    /// Rejects without requeue: dead-letters the current delivery, or drops it.
    async fn reject(
        &self,
        id: MessageId,
        queue: Queue,
        group: &GroupRef,
        receipt: Option<Receipt>,
        reason: &str,
    ) -> std::result::Result<Settled, Refused> {
        let now = self.now();
        let current = self.current_delivery(id, group).await.map_err(Refused::Store)?;
        let Some(current) = current.filter(|d| !d.state.is_final()) else {
            // Let the conditional write report the state.
            let drop = Settlement::Drop { cause: DropCause::Rejected, dead_lettered: false };
            return self.apply(id, queue, group, drop, receipt, now).await;
        };
        if receipt.is_some_and(|r| r.delivery_count != current.delivery_count) {
            return Err(Refused::State(SettleRefusal::Superseded(current)));
        }
        let record = self.log.read(id).await.map_err(|e| Refused::Store(e.into()))?;
        let u = Unsuccessful {
            handed_out: true,
            queue: &queue,
            group,
            id,
            record: record.as_ref(),
            delivery_count: current.delivery_count,
            cause: DropCause::Rejected,
            reason,
        };
        match self.finish_unsuccessfully(u).await.map_err(Refused::Store)? {
            Ok(delivery) => {
                let dead_lettered = delivery.state == DeliveryState::DeadLettered;
                Ok(Settled { id, queue, delivery, dead_lettered, at: now })
            }
            Err(refused) => Err(Refused::State(refused)),
        }
    }

    async fn apply(
        &self,
        id: MessageId,
        queue: Queue,
        group: &GroupRef,
        settlement: Settlement,
        receipt: Option<Receipt>,
        now: Timestamp,
    ) -> std::result::Result<Settled, Refused> {
        let request = SettleRequest::new(id, group, settlement, now, receipt.map(|r| r.delivery_count));
        match self.settle_counted(&request).await {
            Ok(Ok(delivery)) => Ok(Settled { id, queue, delivery, dead_lettered: false, at: now }),
            // Acknowledging again is idempotent: it answers the first acknowledgement.
            Ok(Err(SettleRefusal::Finished(delivery)))
                if settlement == Settlement::Acknowledge && delivery.state == DeliveryState::Acknowledged =>
            {
                Ok(Settled { id, queue, delivery, dead_lettered: false, at: now })
            }
            Ok(Err(refusal)) => Err(Refused::State(refusal)),
            Err(e) => Err(Refused::Store(e)),
        }
    }

    async fn current_delivery(&self, id: MessageId, group: &GroupRef) -> Result<Option<Delivery>> {
        let all = self.leases.deliveries(id.queue_id, id.partition, id.offset).await?;
        Ok(all.into_iter().find(|d| &d.group == group))
    }

    /// The one group holding the message, when the caller named none.
    async fn only_group(&self, id: MessageId, text: &str) -> Result<GroupRef> {
        let all = self.leases.deliveries(id.queue_id, id.partition, id.offset).await?;
        let open: Vec<&Delivery> = all.iter().filter(|d| !d.state.is_final()).collect();
        let candidates = if open.is_empty() { all.iter().collect() } else { open };
        match candidates.as_slice() {
            [one] => Ok(one.group.clone()),
            [] => Err(Error::DeliveryConflict {
                code: "not_delivered",
                reason: "the message has not been delivered to any group yet".into(),
                message_id: text.to_owned(),
                group: String::new(),
                state: None,
            }),
            many => {
                let names: Vec<&str> = many.iter().map(|d| d.group.name()).collect();
                Err(Error::invalid("group_id", format!("several groups hold this message; name one of {names:?}")))
            }
        }
    }
}

enum Refused {
    State(SettleRefusal),
    Store(Error),
}

fn refusal(r: Refused, conflict: &impl Fn(&'static str, String, Option<&'static str>) -> Error) -> Error {
    match r {
        Refused::Store(e) => e,
        Refused::State(SettleRefusal::NotDelivered) => {
            conflict("not_delivered", "the message has not been delivered to this group".into(), None)
        }
        Refused::State(SettleRefusal::Finished(d)) => conflict(
            "already_settled",
            format!("the group is done with this message: it is {}", d.state.as_str()),
            Some(d.state.as_str()),
        ),
        Refused::State(SettleRefusal::Superseded(d)) => conflict(
            "lease_expired",
            format!("that delivery's lease ended; the message was delivered again (delivery {})", d.delivery_count),
            Some(d.state.as_str()),
        ),
        Refused::State(SettleRefusal::NotLeased(d)) => conflict(
            "lease_expired",
            "the lease has already ended; consume the message again".into(),
            Some(d.state.as_str()),
        ),
    }
}
