//! Publishing: resolve the queue, pick a partition, append durably. The
//! message id is the record's location, so nothing is written to the metadata store.

use std::{sync::atomic::Ordering, time::Instant};

use serde_json::{Map, Value};

use super::Service;
use crate::{
    auth::Principal,
    domain::{Count, Latency, MessageId, Op, QueueName},
    error::{Error, Result, StoreError},
    ports::{Content, Queue, Record},
};

/// A message to publish, already validated.
#[derive(Debug, Clone)]
pub struct Publish {
    pub queue: QueueName,
    /// Explicit partitioning key (`/api/v1` `key`).
    pub key: Option<String>,
    pub routing_key: Option<String>,
    pub content: Content,
    pub headers: Map<String, Value>,
    pub priority: Option<u8>,
    /// The message's own TTL; else the queue's `x-message-ttl`, else the configured default.
    pub ttl_ms: Option<u64>,
    pub persistent: bool,
}

/// A durable message and where it lives.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: MessageId,
    pub queue: Queue,
    pub record: Record,
}

/// One queue's share of a batch: its records, each with its index in the batch and its partition.
type QueueShare = (Queue, Vec<(usize, u32, Record)>);

impl Service {
    /// Appends one message; answers only once it is durable.
    pub async fn publish(&self, caller: &Principal, cmd: Publish) -> Result<Published> {
        let mut results = self.publish_many(caller, vec![cmd]).await;
        results.pop().unwrap_or_else(|| Err(Error::Internal { reason: "a publish produced no result".into() }))
    }

    /// Appends many messages, one transaction per queue; each gets its own outcome, in order.
    pub async fn publish_many(&self, caller: &Principal, cmds: Vec<Publish>) -> Vec<Result<Published>> {
        let started = Instant::now();
        let names: Vec<QueueName> = cmds.iter().map(|c| c.queue.clone()).collect();
        let mut results: Vec<Option<Result<Published>>> = (0..cmds.len()).map(|_| None).collect();
        let mut by_queue: Vec<QueueShare> = Vec::new();
        for (index, cmd) in cmds.into_iter().enumerate() {
            match self.prepare(caller, cmd, &mut by_queue).await {
                Ok((slot, partition, record)) => by_queue[slot].1.push((index, partition, record)),
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        for (queue, items) in by_queue {
            for (index, outcome) in self.append_to(&queue, items).await {
                results[index] = Some(outcome);
            }
            self.wakeups.publish(queue.id);
        }
        let took = started.elapsed();
        let results: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal { reason: "lost a publish".into() })))
            .collect();
        for (name, result) in names.iter().zip(&results) {
            let queue = match result {
                Ok(published) => {
                    self.record(published.queue.id, |f| {
                        f.add(Count::Published, 1);
                        f.record(Latency::Publish, took);
                    });
                    crate::telemetry::produced(&published.queue, took);
                    Some(published.queue.id)
                }
                Err(_) => self.known_queue_id(name),
            };
            self.record_outcome(Op::Publish, queue, result);
        }
        results
    }

    /// Checks one message and finds its queue (slot in `by_queue`), partition and record.
    async fn prepare(
        &self,
        caller: &Principal,
        cmd: Publish,
        by_queue: &mut Vec<QueueShare>,
    ) -> Result<(usize, u32, Record)> {
        let size = cmd.content.as_text().len();
        if size > self.config.max_message_size {
            return Err(Error::PayloadTooLarge { limit: self.config.max_message_size as u64, size: Some(size as u64) });
        }
        let slot = match by_queue.iter().position(|(q, _)| q.name == cmd.queue) {
            Some(slot) => slot,
            None => {
                let queue = self.resolve_queue(caller, &cmd.queue, true).await?;
                by_queue.push((queue, Vec::new()));
                by_queue.len() - 1
            }
        };
        let queue = &by_queue[slot].0;
        let key = cmd.key.or_else(|| cmd.routing_key.clone());
        let partition = match &key {
            Some(k) => key_partition(k.as_bytes(), queue.settings.partitions),
            None => self.next_partition.fetch_add(1, Ordering::Relaxed) % queue.settings.partitions,
        };
        let ttl_ms = cmd.ttl_ms.or(queue.settings.arguments.message_ttl_ms).unwrap_or(self.config.default_ttl_ms);
        let record = Record {
            key,
            routing_key: cmd.routing_key,
            content: cmd.content,
            headers: cmd.headers,
            priority: cmd.priority,
            ttl_ms,
            persistent: cmd.persistent,
            published_at: self.now(),
        };
        Ok((slot, partition, record))
    }

    /// Appends one queue's share of a batch, after checking it has room.
    async fn append_to(&self, queue: &Queue, items: Vec<(usize, u32, Record)>) -> Vec<(usize, Result<Published>)> {
        let indexes: Vec<usize> = items.iter().map(|(i, _, _)| *i).collect();
        let fail = |e: Error| indexes.iter().map(|&i| (i, Err(e.clone()))).collect::<Vec<_>>();
        if let Err(e) = self.check_room(queue, items.len() as u64).await {
            return fail(e);
        }
        let records: Vec<(u32, Record)> = items.iter().map(|(_, p, r)| (*p, r.clone())).collect();
        let appended = match self.log.append(queue.id, records.clone()).await {
            // The queue is in the metadata but its log is not (a crash between the two, or a
            // partition added by another process): make it, then append once more.
            Err(StoreError::NotFound) if self.heal_log(queue).await => self.log.append(queue.id, records).await,
            other => other,
        };
        let offsets = match appended {
            Ok(offsets) => offsets,
            Err(StoreError::NotFound) => {
                self.queues.evict(&queue.name);
                return fail(Error::QueueNotFound { queue: queue.name.to_string() });
            }
            Err(e) => return fail(e.into()),
        };
        items
            .into_iter()
            .zip(offsets)
            .map(|((index, partition, record), offset)| {
                let published = offset.map(|offset| {
                    let id = MessageId { queue_id: queue.id, partition, offset };
                    Published { id, queue: queue.clone(), record }
                });
                (index, published.map_err(Error::from))
            })
            .collect()
    }

    /// Makes the log of a queue the metadata still holds; false when the queue is gone.
    async fn heal_log(&self, queue: &Queue) -> bool {
        match self.meta.queue_by_id(queue.id).await {
            Ok(Some(current)) => self.log.create_log(current.id, &super::log_spec(&current.settings)).await.is_ok(),
            _ => false,
        }
    }
}

/// Kafka's default partitioner: positive murmur2 of the key, modulo the partition count.
fn key_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 4] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()) as i32, want, "{key}");
        }
    }

    #[test]
    fn a_key_always_lands_on_the_same_partition() {
        let p = key_partition(b"user-123", 3);
        assert!(p < 3);
        assert_eq!(key_partition(b"user-123", 3), p);
        assert_eq!(key_partition(b"anything", 1), 0);
    }
}
