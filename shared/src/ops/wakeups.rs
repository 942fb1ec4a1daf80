//! Wakes long-polling consumers of a queue when this process publishes to it,
//! and the dispatcher when the queue has an active subscription. Publishes by
//! other processes wake them through the store's signals (`signals.rs`) where it
//! has them; the periodic re-checks find them in any case.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

use crate::ports::QueueId;

#[derive(Debug, Default)]
pub(super) struct Wakeups {
    queues: Mutex<HashMap<QueueId, Arc<Notify>>>,
    any: Arc<Notify>,
    /// Queues with an active subscription, as the dispatcher last saw them.
    subscribed: Mutex<HashSet<QueueId>>,
    /// Queues published to since the last announcement to other processes, while someone announces.
    unannounced: Mutex<Option<HashSet<QueueId>>>,
}

impl Wakeups {
    /// The notifier of a queue, made on first use.
    pub(super) fn of(&self, queue: QueueId) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(queue).or_default().clone()
    }

    /// Notified on a publish to a subscribed queue (the dispatcher waits on it).
    pub(super) fn any(&self) -> Arc<Notify> {
        self.any.clone()
    }

    /// Replaces the set of queues whose publishes wake the dispatcher.
    pub(super) fn set_subscribed(&self, queues: HashSet<QueueId>) {
        *self.subscribed.lock().unwrap_or_else(|p| p.into_inner()) = queues;
    }

    /// Wakes the dispatcher, as when a subscription is made or resumed.
    pub(super) fn wake_dispatcher(&self) {
        self.any.notify_waiters();
    }

    /// Wakes every waiter on the queue here, and notes it for the next announcement to other processes.
    pub(super) fn publish(&self, queue: QueueId) {
        if let Some(queues) = self.unannounced.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            queues.insert(queue);
        }
        self.wake(queue);
    }

    /// From now on, notes the queues published to for [`Self::take_unannounced`].
    pub(super) fn start_announcing(&self) {
        self.unannounced.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_default();
    }

    /// The queues published to since the last call.
    pub(super) fn take_unannounced(&self) -> Vec<QueueId> {
        let mut unannounced = self.unannounced.lock().unwrap_or_else(|p| p.into_inner());
        unannounced.as_mut().map(|queues| queues.drain().collect()).unwrap_or_default()
    }

    /// Wakes every consumer waiting on the queue, and the dispatcher if the queue is subscribed.
    pub(super) fn wake(&self, queue: QueueId) {
        if self.subscribed.lock().unwrap_or_else(|p| p.into_inner()).contains(&queue) {
            self.any.notify_waiters();
        }
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = queues.get(&queue) {
            n.notify_waiters();
        }
    }
}

/// Set once when the process begins to stop: long polls answer at once, background loops end.
#[derive(Debug)]
pub(super) struct Stopping(tokio::sync::watch::Sender<bool>);

impl Default for Stopping {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(false))
    }
}

impl Stopping {
    pub(super) fn stop(&self) {
        self.0.send_replace(true);
    }

    pub(super) fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the process is stopping (at once if it already is).
    pub(super) fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}
