//! Reads: assign-only consumers (no group, no commits) kept in a small pool; a range read
//! assigns one partition at the asked offset and polls until the limit, or the partition's end
//! (librdkafka's end-of-partition event), or the timeout. Blocking calls run on tokio's
//! blocking threads.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Message,
};

use super::{KafkaOptions, failed, produce::record_of, store_error};
use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{BackendInfo, PartitionInfo, ReadLimit, Record, StoreResult},
};

/// Idle readers kept for the next reads.
const POOL: usize = 8;

/// Each partition's last record's publish time, by the partition's end when it was read: a
/// record never changes, so while the end stays, so does the time.
type LastPublished = Arc<Mutex<HashMap<(String, u32), (u64, Option<Timestamp>)>>>;

pub(super) struct Readers {
    options: KafkaOptions,
    idle: Arc<Mutex<Vec<BaseConsumer>>>,
    last_published: LastPublished,
}

impl Readers {
    pub(super) fn new(options: &KafkaOptions) -> Self {
        Self { options: options.clone(), idle: Arc::default(), last_published: Arc::default() }
    }

    /// Runs `job` with a reader on a blocking thread, and keeps the reader for later.
    async fn with_reader<T: Send + 'static>(
        &self,
        job: impl FnOnce(&BaseConsumer) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let taken = self.idle.lock().expect("readers").pop();
        let reader = match taken {
            Some(reader) => reader,
            None => self.reader()?,
        };
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let out = job(&reader);
            let mut idle = idle.lock().expect("readers");
            if out.is_ok() && idle.len() < POOL {
                idle.push(reader);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Failed(format!("a read stopped: {e}")))?
    }

    fn reader(&self) -> StoreResult<BaseConsumer> {
        self.options
            // librdkafka assigns partitions only to a consumer with a group; it never joins
            // or commits to it here.
            .client(&[
                ("group.id", "message-queue-readers"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("auto.offset.reset", "earliest"),
                ("fetch.wait.max.ms", "10"),
                ("fetch.max.bytes", "1048576"),
                ("max.partition.fetch.bytes", "1048576"),
                ("queued.max.messages.kbytes", "1024"),
            ])
            .create()
            .map_err(|e| failed("cannot make a reader", &e))
    }

    /// Forgets what was read of a topic about to be deleted: the idle readers (their prefetched
    /// records go with them) and its partitions' last publish times.
    pub(super) fn forget(&self, topic: &str) {
        self.idle.lock().expect("readers").clear();
        self.last_published.lock().expect("last published").retain(|(t, _), _| t != topic);
    }

    pub(super) async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>> {
        let (topic, timeout) = (topic.to_owned(), self.options.timeout);
        self.with_reader(move |reader| read_from(reader, &topic, partition, from, limit, timeout)).await
    }

    /// Each partition's first and next offsets (the low and high watermarks), and the publish
    /// time of its last record (read back once per end); none for a topic that does not exist.
    pub(super) async fn partitions(&self, topic: &str) -> StoreResult<Vec<PartitionInfo>> {
        let (topic, timeout, known) = (topic.to_owned(), self.options.timeout, self.last_published.clone());
        self.with_reader(move |reader| {
            let count = match count_partitions(reader, &topic, timeout) {
                Err(StoreError::NotFound) => return Ok(Vec::new()),
                other => other?,
            };
            (0..count)
                .map(|p| {
                    let (low, high) = reader
                        .fetch_watermarks(&topic, p as i32, timeout)
                        .map_err(|e| store_error("watermarks", &e))?;
                    let (start_offset, end_offset) = (low.max(0) as u64, high.max(0) as u64);
                    let key = (topic.clone(), p);
                    let seen = known.lock().expect("last published").get(&key).copied();
                    let last_published_at = match seen {
                        _ if end_offset <= start_offset => None,
                        Some((end, at)) if end == end_offset => at,
                        _ => {
                            let last = fetch(reader, &topic, p, end_offset - 1, ReadLimit::ONE, timeout)?;
                            let at = last.first().map(|(_, record)| record.published_at);
                            known.lock().expect("last published").insert(key, (end_offset, at));
                            at
                        }
                    };
                    Ok(PartitionInfo { partition: p, start_offset, end_offset, last_published_at })
                })
                .collect()
        })
        .await
    }

    /// How many partitions a topic has; `NotFound` when it does not exist.
    pub(super) async fn partition_count(&self, topic: &str) -> StoreResult<u32> {
        let (topic, timeout) = (topic.to_owned(), self.options.timeout);
        self.with_reader(move |reader| count_partitions(reader, &topic, timeout)).await
    }

    /// A metadata round trip: how many brokers and topics the cluster reports.
    pub(super) async fn describe(&self) -> StoreResult<BackendInfo> {
        let timeout = self.options.timeout;
        self.with_reader(move |reader| {
            let metadata = reader.fetch_metadata(None, timeout).map_err(|e| store_error("metadata", &e))?;
            Ok(BackendInfo {
                kind: "kafka",
                version: format!(
                    "{} broker(s), {} topic(s), answered by broker {}",
                    metadata.brokers().len(),
                    metadata.topics().len(),
                    metadata.orig_broker_id()
                ),
                disk_bytes: None,
            })
        })
        .await
    }
}

fn count_partitions(reader: &BaseConsumer, topic: &str, timeout: Duration) -> StoreResult<u32> {
    let metadata = reader.fetch_metadata(Some(topic), timeout).map_err(|e| store_error("metadata", &e))?;
    let found = metadata.topics().iter().find(|t| t.name() == topic).ok_or(StoreError::NotFound)?;
    if found.error().is_some() || found.partitions().is_empty() {
        return Err(StoreError::NotFound);
    }
    Ok(found.partitions().len() as u32)
}

fn read_from(
    reader: &BaseConsumer,
    topic: &str,
    partition: u32,
    from: u64,
    limit: ReadLimit,
    timeout: Duration,
) -> StoreResult<Vec<(u64, Record)>> {
    // Nothing to fetch at or past the end (nor from a partition that does not exist); below
    // the start, reading begins at the start.
    let (low, high) = match reader.fetch_watermarks(topic, partition as i32, timeout) {
        Ok(marks) => marks,
        Err(e) => match store_error("watermarks", &e) {
            StoreError::NotFound => return Ok(Vec::new()),
            other => return Err(other),
        },
    };
    if from as i64 >= high {
        return Ok(Vec::new());
    }
    fetch(reader, topic, partition, from.max(low.max(0) as u64), limit, timeout)
}

/// Reads from `from`, an offset the partition holds: assigns it there and polls until the
/// limit, the partition's end or the timeout.
fn fetch(
    reader: &BaseConsumer,
    topic: &str,
    partition: u32,
    from: u64,
    limit: ReadLimit,
    timeout: Duration,
) -> StoreResult<Vec<(u64, Record)>> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition as i32, Offset::Offset(from as i64))
        .map_err(|e| failed("assigning", &e))?;
    reader.assign(&assignment).map_err(|e| store_error("assigning", &e))?;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut bytes = 0u64;
    // An error that may pass (a connection lost and being made again) is noted and polling goes
    // on: librdkafka reconnects by itself, and the read fails only at the deadline.
    let mut passing: Option<String> = None;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let last = passing.as_deref().map(|e| format!(" (last: {e})")).unwrap_or_default();
            break Err(StoreError::Unavailable {
                reason: format!("reading {topic}[{partition}] took over {timeout:?}{last}"),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        match reader.poll(left.min(Duration::from_millis(100))) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition as i32 => break Ok(()),
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => match store_error("reading", &e) {
                StoreError::Unavailable { reason, .. } => passing = Some(reason),
                other => break Err(other),
            },
            Some(Ok(m)) => {
                if m.partition() != partition as i32 || m.offset() < from as i64 {
                    continue;
                }
                let record = record_of(&m);
                let size = record.content_bytes();
                // No record that would pass the byte limit, but always the first.
                if !out.is_empty() && bytes + size > limit.bytes {
                    break Ok(());
                }
                bytes += size;
                out.push((m.offset() as u64, record));
                if out.len() >= limit.records as usize || bytes >= limit.bytes {
                    break Ok(());
                }
            }
        }
    };
    let _ = reader.unassign();
    result.map(|()| out)
}
