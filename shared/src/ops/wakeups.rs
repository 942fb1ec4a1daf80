//! Wakes long-polling consumers of a queue when this process publishes to it.
//! Publishes by other processes are found by the consumers' periodic re-check.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use tokio::sync::Notify;

use crate::ports::QueueId;

#[derive(Debug, Default)]
pub(super) struct Wakeups {
    queues: Mutex<HashMap<QueueId, Arc<Notify>>>,
    any: Arc<Notify>,
}

impl Wakeups {
    /// The notifier of a queue, made on first use.
    pub(super) fn of(&self, queue: QueueId) -> Arc<Notify> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.entry(queue).or_default().clone()
    }

    /// Notified on a publish to any queue (the dispatcher waits on it).
    pub(super) fn any(&self) -> Arc<Notify> {
        self.any.clone()
    }

    /// Wakes every consumer waiting on the queue, and the dispatcher.
    pub(super) fn publish(&self, queue: QueueId) {
        self.any.notify_waiters();
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = queues.get(&queue) {
            n.notify_waiters();
        }
    }
}
