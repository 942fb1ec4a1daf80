//! A short-lived cache of queue records, so the publish path reads no metadata
//! for a queue it saw within the last second. Changes made by this process
//! evict at once; changes made by another process are seen within [`TTL`].

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{domain::QueueName, ports::Queue};

/// How long a cached queue is trusted.
const TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct QueueCache {
    entries: Mutex<HashMap<QueueName, (Instant, Queue)>>,
}

impl QueueCache {
    pub(super) fn get(&self, name: &QueueName) -> Option<Queue> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(name).filter(|(at, _)| at.elapsed() < TTL).map(|(_, q)| q.clone())
    }

    pub(super) fn put(&self, queue: &Queue) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(queue.name.clone(), (Instant::now(), queue.clone()));
    }

    pub(super) fn evict(&self, name: &QueueName) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}
