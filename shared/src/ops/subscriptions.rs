//! Push subscriptions: stored now, delivered by the dispatcher.

use std::collections::BTreeMap;

use super::Service;
use crate::{
    auth::{Principal, random_hex},
    callback::CallbackUrl,
    domain::{QueueName, RoutingPattern},
    error::{Error, Result, StoreError},
    ports::{GroupRef, RetryPolicy, Subscription, SubscriptionStatus},
    routing::HeaderMatch,
};

/// A subscription to create, already validated.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub queue: QueueName,
    pub routing_key: RoutingPattern,
    pub callback_url: CallbackUrl,
    pub headers: BTreeMap<String, String>,
    pub retry_policy: RetryPolicy,
    pub dead_letter_queue: Option<QueueName>,
    pub prefetch_count: u32,
    pub match_headers: Option<HeaderMatch>,
    /// One message at a time per partition, in order (see [`Subscription::ordered`]).
    pub ordered: bool,
}

impl Service {
    /// Stores a subscription; the queue (and dead-letter queue) follow the auto-create rule.
    pub async fn subscribe(&self, caller: &Principal, new: NewSubscription) -> Result<Subscription> {
        let (host, port) = new.callback_url.host_and_port();
        self.config
            .callback_policy
            .check_host(&*self.resolver, &host, port)
            .await
            .map_err(|e| Error::invalid("callback_url", e))?;
        let queue = self.resolve_queue(caller, &new.queue, true).await?;
        if let Some(dlq) = &new.dead_letter_queue {
            self.resolve_queue(caller, dlq, true).await?;
        }
        let now = self.now();
        let sub = Subscription {
            id: format!("sub_{}", random_hex(12)),
            queue_id: queue.id,
            queue: queue.name,
            routing_key: new.routing_key,
            callback_url: new.callback_url,
            headers: new.headers,
            retry_policy: new.retry_policy,
            dead_letter_queue: new.dead_letter_queue,
            prefetch_count: new.prefetch_count,
            match_headers: new.match_headers,
            ordered: new.ordered,
            paused_reason: None,
            secret: crate::dispatch::signature::new_secret(),
            status: SubscriptionStatus::Active,
            owner: Some(caller.subject.clone()),
            created_at: now,
            updated_at: now,
        };
        let ends: Vec<(u32, u64)> =
            self.log.partitions(queue.id).await?.iter().map(|p| (p.partition, p.end_offset)).collect();
        self.leases.start_group(queue.id, &GroupRef::Subscription(sub.id.clone()), &ends).await?;
        match self.meta.create_subscription(&sub).await {
            Ok(()) => {
                self.wakeups.wake_dispatcher();
                Ok(sub)
            }
            Err(StoreError::NotFound) => Err(Error::QueueNotFound { queue: sub.queue.to_string() }),
            Err(e) => Err(e.into()),
        }
    }
}

impl Service {
    /// One subscription, if the caller may use its queue.
    pub async fn subscription(&self, caller: &Principal, id: &str) -> Result<Subscription> {
        let sub = self
            .meta
            .subscription(id)
            .await?
            .ok_or_else(|| Error::SubscriptionNotFound { subscription_id: id.to_owned() })?;
        if let Some(queue) = self.queue_by_id(sub.queue_id).await? {
            super::check_access(caller, &queue)?;
        }
        Ok(sub)
    }

    /// The subscriptions of one queue, or of all.
    pub async fn list_subscriptions(&self, caller: &Principal, queue: Option<&QueueName>) -> Result<Vec<Subscription>> {
        let queue_id = match queue {
            Some(name) => {
                let q = self.existing_queue(name).await?;
                super::check_access(caller, &q)?;
                Some(q.id)
            }
            None => None,
        };
        Ok(self.meta.subscriptions(queue_id).await?)
    }

    /// Deletes a subscription and its delivery state; an `auto_delete` queue left without one goes too.
    pub async fn delete_subscription(&self, caller: &Principal, id: &str) -> Result<()> {
        let sub = self.subscription(caller, id).await?;
        if !self.meta.delete_subscription(id).await? {
            return Err(Error::SubscriptionNotFound { subscription_id: id.to_owned() });
        }
        let group = GroupRef::Subscription(sub.id.clone());
        self.leases.forget_group(sub.queue_id, &group).await?;
        self.push.forget_group(sub.queue_id, &group).await?;
        if let Some(queue) = self.queue_by_id(sub.queue_id).await?
            && queue.settings.auto_delete
            && self.meta.subscriptions(Some(queue.id)).await?.is_empty()
        {
            self.delete_queue(caller, &queue.name).await?;
        }
        Ok(())
    }

    /// Pauses (with a reason) or resumes a subscription.
    pub async fn set_paused(&self, caller: &Principal, id: &str, paused: Option<String>) -> Result<Subscription> {
        let mut sub = self.subscription(caller, id).await?;
        sub.status = if paused.is_some() { SubscriptionStatus::Paused } else { SubscriptionStatus::Active };
        sub.paused_reason = paused;
        sub.updated_at = self.now();
        self.meta.update_subscription(&sub).await?;
        if sub.is_active() {
            self.wakeups.wake_dispatcher();
        }
        Ok(sub)
    }

    /// Replaces a subscription's signing secret; the new one is answered once.
    pub async fn rotate_secret(&self, caller: &Principal, id: &str) -> Result<Subscription> {
        let mut sub = self.subscription(caller, id).await?;
        sub.secret = crate::dispatch::signature::new_secret();
        sub.updated_at = self.now();
        self.meta.update_subscription(&sub).await?;
        Ok(sub)
    }
}
