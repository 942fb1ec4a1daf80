//! Topics: created with the queue's partitions, replication and retention (`retention.ms`, and
//! `retention.bytes` as the queue's byte limit shared out per partition), grown when declared
//! again with more partitions, deleted with the queue. A topic that already exists is used.

use rdkafka::{
    Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use super::{KafkaOptions, code_error, read::Readers, store_error};
use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{LogSpec, ReadLimit, StoreResult},
};

fn options(o: &KafkaOptions) -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(o.timeout)).request_timeout(Some(o.timeout))
}

/// Creates the topic, or adds partitions to an existing one that has fewer.
pub(super) async fn create(
    admin: &AdminClient<DefaultClientContext>,
    o: &KafkaOptions,
    readers: &Readers,
    topic: &str,
    spec: &LogSpec,
) -> StoreResult<()> {
    let retention_ms = spec.retention_ms.map(|ms| ms.to_string());
    let retention_bytes = spec.max_bytes.map(|b| b.div_ceil(u64::from(spec.partitions.max(1))).to_string());
    let mut new = NewTopic::new(topic, spec.partitions as i32, TopicReplication::Fixed(spec.replication as i32));
    if let Some(ms) = &retention_ms {
        new = new.set("retention.ms", ms);
    }
    if let Some(bytes) = &retention_bytes {
        new = new.set("retention.bytes", bytes);
    }
    let answers = admin.create_topics([&new], &options(o)).await.map_err(|e| store_error("creating a topic", &e))?;
    match answers.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
            let have = match readers.partition_count(topic).await {
                // Kafka deletes topics in the background: the name is taken until it is done.
                Err(StoreError::NotFound) => return Err(being_deleted(topic)),
                other => other?,
            };
            if have >= spec.partitions {
                return Ok(());
            }
            let grow = NewPartitions::new(topic, spec.partitions as usize);
            // A refusal (a policy, or a broker that cannot) means the request cannot be met as asked.
            let refused = |e: StoreError| match e {
                StoreError::Failed(why) => StoreError::Conflict(format!("the brokers do not add partitions: {why}")),
                other => other,
            };
            let what = format!("adding partitions to {topic}");
            let answers =
                admin.create_partitions([&grow], &options(o)).await.map_err(|e| refused(store_error(&what, &e)))?;
            match answers.into_iter().next() {
                Some(Err((_, code))) => Err(refused(code_error(&what, Some(code), &code))),
                _ => Ok(()),
            }
        }
        Some(Err((_, code))) => Err(code_error(&format!("creating topic {topic}"), Some(code), &code)),
        None => Err(StoreError::Failed(format!("creating topic {topic}: no answer"))),
    }
}

/// A topic whose deletion the brokers have not finished.
fn being_deleted(topic: &str) -> StoreError {
    StoreError::Unavailable {
        reason: format!("topic {topic} is still being deleted"),
        retry_after: Some(std::time::Duration::from_secs(1)),
    }
}

/// Deletes the topic; one already gone is not an error.
pub(super) async fn delete(
    admin: &AdminClient<DefaultClientContext>,
    o: &KafkaOptions,
    topic: &str,
) -> StoreResult<()> {
    let answers = admin.delete_topics(&[topic], &options(o)).await.map_err(|e| store_error("deleting a topic", &e))?;
    match answers.into_iter().next() {
        Some(Err((_, RDKafkaErrorCode::UnknownTopicOrPartition))) | Some(Ok(_)) | None => Ok(()),
        Some(Err((_, code))) => Err(code_error(&format!("deleting topic {topic}"), Some(code), &code)),
    }
}

/// Records read per step while looking for where to cut.
const SCAN: u32 = 500;

/// Removes each partition's records published before `before`, then the oldest of the topic
/// while more than `max_bytes` of content remain, with DeleteRecords; answers how many went.
/// Where to cut is found by reading the partitions' heads (all of them under a byte limit).
pub(super) async fn trim(
    admin: &AdminClient<DefaultClientContext>,
    o: &KafkaOptions,
    readers: &Readers,
    topic: &str,
    before: Timestamp,
    max_bytes: Option<u64>,
) -> StoreResult<u64> {
    let parts = readers.partitions(topic).await?;
    let mut cuts: Vec<u64> = Vec::with_capacity(parts.len());
    // (published_at, partition, offset, bytes) of every record kept, when a byte limit applies.
    let mut kept: Vec<(i64, u32, u64, u64)> = Vec::new();
    for p in &parts {
        let mut cut = p.start_offset;
        let mut from = p.start_offset;
        let mut dated = true;
        while from < p.end_offset {
            let limit = ReadLimit { records: SCAN, bytes: u64::MAX };
            let got = readers.read(topic, p.partition, from, limit).await?;
            let Some(last) = got.last().map(|(offset, _)| *offset) else { break };
            for (offset, record) in &got {
                if dated && record.published_at < before {
                    cut = offset + 1;
                } else {
                    dated = false;
                    kept.push((record.published_at.0, p.partition, *offset, record.content_bytes()));
                }
            }
            if !dated && max_bytes.is_none() {
                break;
            }
            from = last + 1;
        }
        cuts.push(cut);
    }
    if let Some(max) = max_bytes {
        kept.sort_unstable_by(|a, b| b.cmp(a));
        let mut total = 0u64;
        for (_, partition, offset, bytes) in kept {
            total += bytes;
            if total > max {
                let i = parts.iter().position(|p| p.partition == partition).expect("read from it");
                cuts[i] = cuts[i].max(offset + 1);
            }
        }
    }
    let mut list = TopicPartitionList::new();
    let mut removed = 0;
    for (p, cut) in parts.iter().zip(&cuts) {
        if *cut > p.start_offset {
            list.add_partition_offset(topic, p.partition as i32, Offset::Offset(*cut as i64))
                .map_err(|e| store_error("trimming", &e))?;
            removed += cut - p.start_offset;
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    let answered = admin.delete_records(&list, &options(o)).await.map_err(|e| store_error("deleting records", &e))?;
    for e in answered.elements() {
        if let Err(e) = e.error() {
            return Err(store_error("deleting records", &e));
        }
    }
    Ok(removed)
}
