//! A short-lived cache of queue records, so requests read no metadata for a
//! queue seen within the last second. Changes made by this process evict at
//! once; changes made by another process are seen within [`TTL`].

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    domain::QueueName,
    ports::{Queue, QueueId},
};

/// How long a cached queue is trusted.
const TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct QueueCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_name: HashMap<QueueName, (Instant, Queue)>,
    names: HashMap<QueueId, QueueName>,
}

impl QueueCache {
    pub(super) fn get(&self, name: &QueueName) -> Option<Queue> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.by_name.get(name).filter(|(at, _)| at.elapsed() < TTL).map(|(_, q)| q.clone())
    }

    pub(super) fn get_by_id(&self, id: QueueId) -> Option<Queue> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let name = entries.names.get(&id)?;
        entries.by_name.get(name).filter(|(at, _)| at.elapsed() < TTL).map(|(_, q)| q.clone())
    }

    pub(super) fn put(&self, queue: &Queue) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.names.insert(queue.id, queue.name.clone());
        if let Some((_, old)) = entries.by_name.insert(queue.name.clone(), (Instant::now(), queue.clone()))
            && old.id != queue.id
        {
            entries.names.remove(&old.id);
        }
    }

    pub(super) fn evict(&self, name: &QueueName) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = entries.by_name.remove(name) {
            entries.names.remove(&old.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::Timestamp,
        ports::{QueueArguments, QueueSettings},
    };

    fn queue(id: QueueId, name: &str) -> Queue {
        let settings = QueueSettings {
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: QueueArguments::default(),
            partitions: 1,
            replication: 1,
            retention_ms: None,
            max_bytes: None,
        };
        let name = QueueName::parse(name).expect("a valid name");
        Queue { id, name, settings, owner: None, created_at: Timestamp(0), updated_at: Timestamp(0) }
    }

    #[test]
    fn a_queue_is_found_by_name_and_by_id_until_evicted() {
        let cache = QueueCache::default();
        cache.put(&queue(7, "orders"));
        assert_eq!(cache.get_by_id(7).map(|q| q.name.to_string()), Some("orders".to_owned()));
        assert!(cache.get(&QueueName::parse("orders").unwrap()).is_some());
        cache.evict(&QueueName::parse("orders").unwrap());
        assert!(cache.get_by_id(7).is_none());
    }

    #[test]
    fn a_recreated_queue_replaces_the_old_id() {
        let cache = QueueCache::default();
        cache.put(&queue(7, "orders"));
        cache.put(&queue(8, "orders"));
        assert!(cache.get_by_id(7).is_none());
        assert_eq!(cache.get_by_id(8).map(|q| q.id), Some(8));
    }
}
