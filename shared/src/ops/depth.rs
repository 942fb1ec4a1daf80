//! How many messages a queue holds, from offsets and delivery state, never from a
//! scan of the log. Records at the head of a partition whose TTL has passed are not
//! counted: they are read in short ranges until the first live one (bounded), as
//! RabbitMQ drops expired messages when they reach a queue's head.

use super::Service;
use crate::{
    domain::{MessageId, Timestamp},
    error::{Error, Result},
    ports::{GroupPosition, GroupRef, PartitionInfo, Queue, ReadLimit},
};

/// Head records read per partition, at most, looking for the first live one.
const HEAD_SCAN: u64 = 1024;
/// Sizes of the successive head reads: most heads are live, and one record tells.
const HEAD_READS: [u32; 4] = [1, 15, 112, 896];

/// How far a delivery group is behind: messages it has not finished, and the publish time of
/// the oldest of them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLag {
    /// `None` for the queue's own backlog while no group consumes.
    pub group: Option<GroupRef>,
    /// Not yet reached (live ones), leased, or waiting to be delivered again.
    pub messages: u64,
    pub leased: u64,
    pub oldest: Option<Timestamp>,
}

impl GroupLag {
    /// Seconds since the oldest unfinished message was published (0 when there is none).
    pub fn seconds(&self, now: Timestamp) -> f64 {
        self.oldest.map_or(0.0, |t| (now.0 - t.0).max(0) as f64 / 1000.0)
    }
}

impl Service {
    /// Each group's lag; the queue's own backlog (every live message) when no group consumes.
    pub(super) async fn lags(
        &self,
        queue: &Queue,
        partitions: &[PartitionInfo],
        groups: &[GroupPosition],
        now: Timestamp,
    ) -> Result<Vec<GroupLag>> {
        if groups.is_empty() {
            let (messages, oldest) = self.unread(queue, partitions, &[], now).await?;
            return Ok(vec![GroupLag { group: None, messages, leased: 0, oldest }]);
        }
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let (unread, mut oldest) = self.unread(queue, partitions, &g.fetch_offsets, now).await?;
            for (partition, offset) in &g.oldest_open {
                let open = self.published_at(queue, *partition, *offset).await?;
                oldest = earliest(oldest, open);
            }
            let messages = unread + g.leased + g.available;
            out.push(GroupLag { group: Some(g.group.clone()), messages, leased: g.leased, oldest });
        }
        Ok(out)
    }

    /// Messages not yet finished by the slowest group, and how many of those are leased;
    /// every retained message when no group consumes.
    pub(super) async fn depth(
        &self,
        queue: &Queue,
        partitions: &[PartitionInfo],
        groups: &[GroupPosition],
        now: Timestamp,
    ) -> Result<(u64, u64)> {
        Ok(deepest(&self.lags(queue, partitions, groups, now).await?))
    }

    /// Live records a group has not reached yet, and the publish time of the first of them:
    /// each partition from its fetch offset (from the start where it has none), less the
    /// expired records at that head.
    async fn unread(
        &self,
        queue: &Queue,
        partitions: &[PartitionInfo],
        fetch: &[(u32, u64)],
        now: Timestamp,
    ) -> Result<(u64, Option<Timestamp>)> {
        let (mut total, mut oldest) = (0, None);
        for p in partitions {
            let from = fetch_from(fetch, p.partition);
            let retained = p.retained_from(from);
            if retained > 0 {
                let head = self.live_head(queue, p, from.max(p.start_offset), now).await?;
                total += retained - head.expired;
                oldest = earliest(oldest, head.first_live);
            }
        }
        Ok((total, oldest))
    }

    /// Expired records in a row from `from` on (reading at most [`HEAD_SCAN`]), and the publish
    /// time of the first live one.
    async fn live_head(&self, queue: &Queue, p: &PartitionInfo, from: u64, now: Timestamp) -> Result<Head> {
        let mut head = Head { expired: 0, first_live: None };
        for records in HEAD_READS {
            let limit = ReadLimit { records, bytes: 1 << 20 };
            let read = self.log.read_range(queue.id, p.partition, from + head.expired, limit).await?;
            let live = read.iter().position(|(_, r)| r.expires_at() > now);
            head.expired += live.unwrap_or(read.len()) as u64;
            head.first_live = live.map(|i| read[i].1.published_at);
            if live.is_some() || read.is_empty() || head.expired >= HEAD_SCAN {
                break;
            }
        }
        Ok(head)
    }

    async fn published_at(&self, queue: &Queue, partition: u32, offset: u64) -> Result<Option<Timestamp>> {
        let record = self.log.read(MessageId { queue_id: queue.id, partition, offset }).await?;
        Ok(record.map(|r| r.published_at))
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

struct Head {
    expired: u64,
    first_live: Option<Timestamp>,
}

/// The backlog of the slowest group, and how many of its messages are leased.
pub(super) fn deepest(lags: &[GroupLag]) -> (u64, u64) {
    lags.iter().fold((0, 0), |deepest, l| if l.messages >= deepest.0 { (l.messages, l.leased) } else { deepest })
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
