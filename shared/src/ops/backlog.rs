//! The partitions a group's last lease in this process was served from, while they had more
//! than it asked for: its next consume leases against them without reading the log's ends
//! again. Ends only grow, so stale ones lease fewer records, never records that do not exist;
//! a consume that comes back short reads the ends afresh and leases again before answering. They
//! are trusted for [`TTL`] at most, so partitions added and other partitions' new records are seen
//! within that time even by a group that always has a backlog.

use std::time::{Duration, Instant};

use super::recent::Recent;
use crate::ports::{GroupRef, PartitionInfo, QueueId};

/// How long partitions read from the log are used for.
const TTL: Duration = Duration::from_secs(1);
/// Groups remembered before the memory starts over.
const KEPT: usize = 10_000;

#[derive(Debug)]
pub(super) struct Backlog(Recent<(QueueId, GroupRef), Vec<PartitionInfo>>);

impl Default for Backlog {
    fn default() -> Self {
        Self(Recent::new(TTL, KEPT))
    }
}

impl Backlog {
    /// The partitions the group's last full lease was served from, and when they were read.
    pub(super) fn get(&self, queue: QueueId, group: &GroupRef) -> Option<(Instant, Vec<PartitionInfo>)> {
        self.0.get(&(queue, group.clone()))
    }

    /// Notes the partitions (read from the log at `read`) a lease was served from when it filled
    /// up; forgets them when it did not.
    pub(super) fn note(
        &self,
        queue: QueueId,
        group: &GroupRef,
        read: Instant,
        partitions: &[PartitionInfo],
        full: bool,
    ) {
        if full {
            self.0.put((queue, group.clone()), read, partitions.to_vec());
        } else {
            self.0.remove(&(queue, group.clone()));
        }
    }

    /// Forgets a queue's partitions (retention moved their starts).
    pub(super) fn forget(&self, queue: QueueId) {
        self.0.retain(|(q, _)| *q != queue);
    }
}
