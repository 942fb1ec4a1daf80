//! What the scenarios share: a queue with its log, records, leases and settlements.

use shared::{
    domain::{QueueName, Timestamp},
    ops::Backends,
    ports::*,
};

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

pub fn settings(partitions: u32) -> QueueSettings {
    QueueSettings {
        durable: true,
        auto_delete: false,
        exclusive: false,
        arguments: QueueArguments::default(),
        partitions,
        replication: 1,
        retention_ms: None,
        max_bytes: None,
    }
}

pub fn spec(partitions: u32) -> LogSpec {
    LogSpec { partitions, replication: 1, retention_ms: None, max_bytes: None }
}

pub fn record(text: &str, at: Timestamp) -> Record {
    Record {
        key: None,
        routing_key: Some("a.b".into()),
        content: Content::Text(text.into()),
        headers: Default::default(),
        priority: None,
        ttl_ms: 3_600_000,
        persistent: true,
        published_at: at,
    }
}

/// A queue with its log of `partitions` partitions.
pub async fn queue(b: &Backends, name: &str, partitions: u32) -> Queue {
    let q = b.meta.create_queue(&QueueName::parse(name).unwrap(), &settings(partitions), None, T0).await.unwrap();
    b.log.create_log(q.id, &spec(partitions)).await.unwrap();
    q
}

/// Appends one record; answers its offset.
pub async fn append(b: &Backends, q: &Queue, partition: u32, r: Record) -> Result<u64, shared::error::StoreError> {
    let mut results = b.log.append(q.id, vec![(partition, r)]).await?;
    assert_eq!(results.len(), 1, "one result per record");
    results.remove(0)
}

/// `per_partition` records in each partition, `"<partition>/<i>"`.
pub async fn fill(b: &Backends, q: &Queue, per_partition: u64) {
    for p in 0..q.settings.partitions {
        for i in 0..per_partition {
            append(b, q, p, record(&format!("{p}/{i}"), T0)).await.unwrap();
        }
    }
}

pub fn group(name: &str) -> GroupRef {
    GroupRef::Consumers(name.into())
}

pub async fn acquire_all(b: &Backends, q: &Queue, g: &GroupRef, consumer: &str, max: u32, now: Timestamp) -> Acquired {
    let partitions = b.log.partitions(q.id).await.unwrap();
    let req = AcquireRequest {
        queue: q.id,
        group: g.clone(),
        consumer: consumer.into(),
        max,
        lease_ms: 1000,
        now,
        partitions,
        per_partition: None,
    };
    b.leases.acquire(&req).await.unwrap()
}

pub async fn acquire(b: &Backends, q: &Queue, g: &GroupRef, consumer: &str, max: u32, now: Timestamp) -> Vec<Lease> {
    acquire_all(b, q, g, consumer, max, now).await.leases
}

pub async fn settle(
    b: &Backends,
    q: &Queue,
    g: &GroupRef,
    l: &Lease,
    s: Settlement,
    now: Timestamp,
) -> Result<Delivery, SettleRefusal> {
    let req = SettleRequest {
        queue: q.id,
        group: g.clone(),
        partition: l.partition,
        offset: l.offset,
        settlement: s,
        now,
        expect_delivery: Some(l.delivery_count),
        reason: None,
    };
    b.leases.settle(&req).await.unwrap()
}

pub fn offsets(leases: &[Lease]) -> Vec<(u32, u64)> {
    leases.iter().map(|l| (l.partition, l.offset)).collect()
}
