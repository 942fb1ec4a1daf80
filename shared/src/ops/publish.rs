//! Publishing: resolve the queue, pick a partition, append durably. The
//! message id is the record's location, so nothing is written to the metadata store.

use std::{sync::atomic::Ordering, time::Instant};

use serde_json::{Map, Value};

use super::Service;
use crate::{
    auth::Principal,
    domain::{MessageId, QueueName},
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

impl Service {
    /// Appends one message; answers only once it is durable.
    pub async fn publish(&self, caller: &Principal, cmd: Publish) -> Result<Published> {
        let started = Instant::now();
        if cmd.content.as_text().len() > self.config.max_message_size {
            return Err(Error::PayloadTooLarge {
                limit: self.config.max_message_size as u64,
                size: Some(cmd.content.as_text().len() as u64),
            });
        }
        let queue = self.resolve_queue(caller, &cmd.queue, true).await?;
        self.check_room(&queue).await?;
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
        let offset = match self.log.append(queue.id, partition, record.clone()).await {
            Ok(offset) => offset,
            Err(StoreError::NotFound) => return Err(Error::QueueNotFound { queue: queue.name.to_string() }),
            Err(e) => return Err(e.into()),
        };
        self.metrics.record_publish(queue.id, started.elapsed(), record.published_at);
        self.wakeups.publish(queue.id);
        let id = MessageId { queue_id: queue.id, partition, offset };
        Ok(Published { id, queue, record })
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
