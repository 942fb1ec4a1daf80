//! How many messages a queue holds, from offsets and delivery state, never from a
//! scan of the log. Records at the head of a partition whose TTL has passed are not
//! counted: they are read in short ranges until the first live one (bounded), as
//! RabbitMQ drops expired messages when they reach a queue's head.

use super::Service;
use crate::{
    domain::Timestamp,
    error::{Error, Result},
    ports::{GroupPosition, PartitionInfo, Queue, ReadLimit},
};

/// Head records read per partition, at most, looking for the first live one.
const HEAD_SCAN: u64 = 1024;
/// Sizes of the successive head reads: most heads are live, and one record tells.
const HEAD_READS: [u32; 4] = [1, 15, 112, 896];

impl Service {
    /// Messages not yet finished by the slowest group, and how many of those are leased;
    /// every retained message when no group consumes.
    pub(super) async fn depth(
        &self,
        queue: &Queue,
        partitions: &[PartitionInfo],
        groups: &[GroupPosition],
        now: Timestamp,
    ) -> Result<(u64, u64)> {
        if groups.is_empty() {
            return Ok((self.unread(queue, partitions, &[], now).await?, 0));
        }
        let mut deepest = (0, 0);
        for g in groups {
            let backlog = self.unread(queue, partitions, &g.fetch_offsets, now).await? + g.leased + g.available;
            if backlog >= deepest.0 {
                deepest = (backlog, g.leased);
            }
        }
        Ok(deepest)
    }

    /// Live records a group has not reached yet: each partition from its fetch offset (from the
    /// start where it has none), less the expired records at that head.
    async fn unread(
        &self,
        queue: &Queue,
        partitions: &[PartitionInfo],
        fetch: &[(u32, u64)],
        now: Timestamp,
    ) -> Result<u64> {
        let mut total = 0;
        for p in partitions {
            let from = fetch_from(fetch, p.partition);
            let retained = p.retained_from(from);
            if retained > 0 {
                total += retained - self.expired_at_head(queue, p, from.max(p.start_offset), now).await?;
            }
        }
        Ok(total)
    }

    /// Expired records in a row from `from` on, reading at most [`HEAD_SCAN`].
    async fn expired_at_head(&self, queue: &Queue, p: &PartitionInfo, from: u64, now: Timestamp) -> Result<u64> {
        let mut expired = 0;
        for records in HEAD_READS {
            let limit = ReadLimit { records, bytes: 1 << 20 };
            let read = self.log.read_range(queue.id, p.partition, from + expired, limit).await?;
            let live = read.iter().position(|(_, r)| r.expires_at() > now);
            expired += live.unwrap_or(read.len()) as u64;
            if live.is_some() || read.is_empty() || expired >= HEAD_SCAN {
                break;
            }
        }
        Ok(expired)
    }

    /// Refuses `adding` messages to a queue they would take past `x-max-length` (RabbitMQ's
    /// `reject-publish`). Offsets answer the common case; expired heads are read only when
    /// the offsets say the queue is full.
    pub(super) async fn check_room(&self, queue: &Queue, adding: u64) -> Result<()> {
        let Some(max) = queue.settings.arguments.max_length else { return Ok(()) };
        let partitions = self.log.partitions(queue.id).await?;
        let groups = self.leases.groups(queue.id).await?;
        let by_offsets = groups
            .iter()
            .map(|g| upper_bound(&partitions, g))
            .max()
            .unwrap_or_else(|| partitions.iter().map(|p| p.retained_from(0)).sum());
        if by_offsets + adding <= max {
            return Ok(());
        }
        let (message_count, _) = self.depth(queue, &partitions, &groups, self.now()).await?;
        if message_count + adding > max {
            return Err(Error::QueueFull { queue: queue.name.to_string(), max_length: max, message_count });
        }
        Ok(())
    }
}

/// A group's backlog counting expired records too.
fn upper_bound(partitions: &[PartitionInfo], g: &GroupPosition) -> u64 {
    let unread: u64 = partitions.iter().map(|p| p.retained_from(fetch_from(&g.fetch_offsets, p.partition))).sum();
    unread + g.leased + g.available
}

/// Where a group reads a partition from: its fetch offset, or the start when it has none.
fn fetch_from(fetch: &[(u32, u64)], partition: u32) -> u64 {
    fetch.iter().find(|(p, _)| *p == partition).map_or(0, |(_, offset)| *offset)
}
