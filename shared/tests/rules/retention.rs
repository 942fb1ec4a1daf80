//! The retention pass: records past a queue's retention go, and so does what was leased of them;
//! a log that retains by itself (Kafka's) is only followed.

use async_trait::async_trait;
use shared::{
    domain::{MessageId, Timestamp},
    ops::TopicSpec,
    ports::{BackendInfo, LogSpec, MessageLog, PartitionInfo, QueueId, ReadLimit, Record, StoreResult},
};

use super::*;

async fn short_lived(h: &Harness) {
    let spec = TopicSpec {
        name: name("short"),
        partitions: Some(1),
        replication: 1,
        retention_ms: Some(1000),
        max_bytes: None,
    };
    h.service.create_topic(spec).await.unwrap();
}

#[tokio::test]
async fn records_past_their_retention_go_with_their_leases() {
    let h = Harness::new();
    short_lived(&h).await;
    h.publish("short", 1).await;
    h.publish("short", 2).await;
    assert_eq!(h.consume("short", "g", "a", 1).await.len(), 1, "the first is leased");
    h.clock.advance_ms(1500);
    let kept = h.publish("short", 3).await;
    assert_eq!(h.service.enforce_retention().await.unwrap(), 2);
    // The lapsed lease of a removed record is not delivered again.
    let got: Vec<String> = h.consume("short", "g", "b", 10).await.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(got, [kept]);
}

/// The embedded log, saying that it retains by itself.
struct RetainsByItself(Arc<SqliteStore>);

#[async_trait]
impl MessageLog for RetainsByItself {
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()> {
        self.0.create_log(queue, spec).await
    }
    async fn delete_log(&self, queue: QueueId) -> StoreResult<()> {
        self.0.delete_log(queue).await
    }
    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>> {
        self.0.append(queue, records).await
    }
    async fn read_range(&self, q: QueueId, p: u32, from: u64, limit: ReadLimit) -> StoreResult<Vec<(u64, Record)>> {
        self.0.read_range(q, p, from, limit).await
    }
    async fn read(&self, id: MessageId) -> StoreResult<Option<Record>> {
        self.0.read(id).await
    }
    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
        self.0.partitions(queue).await
    }
    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64> {
        self.0.trim(queue, before, max_bytes).await
    }
    async fn describe(&self) -> StoreResult<BackendInfo> {
        MessageLog::describe(&*self.0).await
    }
    fn retains_by_itself(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_log_that_retains_by_itself_is_followed_not_trimmed() {
    let mut embedded = None;
    let h = Harness::with_backends(|store| {
        embedded = Some(store.clone());
        Backends { log: Arc::new(RetainsByItself(store.clone())), ..Backends::all(store) }
    });
    let embedded = embedded.unwrap();
    short_lived(&h).await;
    h.publish("short", 1).await;
    h.publish("short", 2).await;
    assert_eq!(h.consume("short", "g", "a", 1).await.len(), 1, "the first is leased");
    h.clock.advance_ms(1500);
    assert_eq!(h.service.enforce_retention().await.unwrap(), 0, "the log's own retention removes records");
    assert_eq!(h.consume("short", "g", "b", 10).await.len(), 2, "nothing was trimmed");
    // The log removes the first two by itself, as Kafka's retention does: their leases are
    // forgotten by the next pass.
    let queue = h.service.queue_status(&h.caller, &name("short")).await.unwrap().queue;
    assert_eq!(embedded.trim(queue.id, Timestamp(1_700_000_001_000), None).await.unwrap(), 2);
    let kept = h.publish("short", 3).await;
    h.clock.advance_ms(1500);
    h.service.enforce_retention().await.unwrap();
    let status = h.service.queue_status(&h.caller, &name("short")).await.unwrap();
    assert_eq!((status.message_count, status.unacknowledged), (1, 0), "the removed records' leases are gone");
    let got: Vec<String> = h.consume("short", "g", "c", 10).await.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(got, [kept]);
}
