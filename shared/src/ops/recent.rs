//! Values read from a store lately, trusted for a while: a map whose entries expire after a time
//! to live, and which starts over when it holds too many.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

#[derive(Debug)]
pub(super) struct Recent<K, V> {
    ttl: Duration,
    kept: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    pub(super) fn new(ttl: Duration, kept: usize) -> Self {
        Self { ttl, kept, entries: Mutex::default() }
    }

    /// The value and when it was read, while younger than the time to live.
    pub(super) fn get(&self, key: &K) -> Option<(Instant, V)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(read, _)| read.elapsed() < self.ttl).cloned()
    }

    /// Keeps a value read at `read`.
    pub(super) fn put(&self, key: K, read: Instant, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.kept {
            entries.clear();
        }
        entries.insert(key, (read, value));
    }

    pub(super) fn remove(&self, key: &K) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    /// Forgets the entries whose key fails `keep`.
    pub(super) fn retain(&self, keep: impl Fn(&K) -> bool) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_a_full_map_starts_over() {
        let recent = Recent::new(Duration::from_millis(50), 2);
        let now = Instant::now();
        recent.put(1, now, "a");
        assert_eq!(recent.get(&1), Some((now, "a")));
        recent.put(2, now - Duration::from_millis(60), "b");
        assert_eq!(recent.get(&2), None, "read longer ago than the time to live");
        recent.put(3, now, "c");
        assert_eq!((recent.get(&1), recent.get(&3)), (None, Some((now, "c"))), "full: started over");
        recent.retain(|k| *k != 3);
        assert_eq!(recent.get(&3), None);
    }
}
