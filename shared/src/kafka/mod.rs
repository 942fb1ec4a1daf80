//! The message log on Apache Kafka (any broker speaking its protocol), through `rdkafka`: a
//! queue is the topic of its name (after an optional prefix), a record a Kafka record. Offsets,
//! leases and acknowledgements stay in the metadata store; this log never uses Kafka's group
//! coordinator, so any process reads any partition from any offset.
//!
//! - [`produce`]: appends, answered after the broker's delivery report; records' fields as headers.
//! - [`read`]: range reads through a pool of assign-only consumers; partition ends from watermarks.
//! - [`admin`]: topics created, grown and deleted; retention as topic configuration.

mod admin;
mod produce;
mod read;

/// The client library, for tests that reach the brokers beside the log.
pub use rdkafka;

pub use produce::headers;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use rdkafka::{ClientConfig, admin::AdminClient, client::DefaultClientContext, producer::FutureProducer};

use crate::{
    domain::Timestamp,
    error::StoreError,
    ports::{BackendInfo, LogSpec, MessageLog, MetadataStore, PartitionInfo, QueueId, ReadLimit, Record, StoreResult},
};

/// How to reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Put before every queue's name to make its topic's (empty: the name itself).
    pub topic_prefix: String,
    /// Further librdkafka settings (`security.protocol`, `sasl.mechanism`, ...), as given.
    pub settings: Vec<(String, String)>,
    /// How long one call to the brokers may take before it is answered as unavailable.
    pub timeout: Duration,
}

impl KafkaOptions {
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic_prefix: String::new(),
            settings: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }

    /// A client's settings: the brokers, `defaults` (the service's choices for that client),
    /// then the configured settings, which override them.
    fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("client.id", "message-queue");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }
}

/// The message log on Kafka.
pub struct KafkaLog {
    options: KafkaOptions,
    /// Replaced when its idempotence state goes stale (see [`produce::stale`]).
    producer: RwLock<Arc<FutureProducer>>,
    admin: AdminClient<DefaultClientContext>,
    readers: read::Readers,
    /// Where queues' names come from.
    meta: Arc<dyn MetadataStore>,
    /// Each queue's topic, once looked up (a queue's id and name never change).
    topics: Mutex<HashMap<QueueId, Arc<str>>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog").field("brokers", &self.options.brokers).finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Clients for the brokers (connections are made on first use); queue names from `meta`.
    pub fn new(options: KafkaOptions, meta: Arc<dyn MetadataStore>) -> StoreResult<Self> {
        let producer = RwLock::new(Arc::new(produce::producer(&options)?));
        let admin = options.client(&[]).create().map_err(|e| failed("cannot make the admin client", &e))?;
        let readers = read::Readers::new(&options);
        Ok(Self { options, producer, admin, readers, meta, topics: Mutex::new(HashMap::new()) })
    }

    /// The topic of a queue; `NotFound` when the metadata store has no such queue.
    async fn topic(&self, queue: QueueId) -> StoreResult<Arc<str>> {
        if let Some(topic) = self.topics.lock().expect("topics").get(&queue) {
            return Ok(topic.clone());
        }
        let found = self.meta.queue_by_id(queue).await?.ok_or(StoreError::NotFound)?;
        let topic: Arc<str> = format!("{}{}", self.options.topic_prefix, found.name.as_str()).into();
        self.topics.lock().expect("topics").insert(queue, topic.clone());
        Ok(topic)
    }

    fn producer(&self) -> Arc<FutureProducer> {
        self.producer.read().expect("producer").clone()
    }

    /// A new producer in place of `stale`, unless another call replaced it already.
    fn renew_producer(&self, stale: &Arc<FutureProducer>) -> StoreResult<Arc<FutureProducer>> {
        let mut current = self.producer.write().expect("producer");
        if Arc::ptr_eq(&current, stale) {
            tracing::warn!("the Kafka producer's idempotence state went stale; sending through a new producer");
            *current = Arc::new(produce::producer(&self.options)?);
        }
        Ok(current.clone())
    }
}

#[async_trait]
impl MessageLog for KafkaLog {
    async fn create_log(&self, queue: QueueId, spec: &LogSpec) -> StoreResult<()> {
        let topic = self.topic(queue).await?;
        admin::create(&self.admin, &self.options, &self.readers, &topic, spec).await
    }

    async fn delete_log(&self, queue: QueueId) -> StoreResult<()> {
        let topic = self.topic(queue).await?;
        // Readers go first: none may still be fetching from the topic once it is gone.
        self.readers.forget(&topic);
        admin::delete(&self.admin, &self.options, &topic).await
    }

    async fn append(&self, queue: QueueId, records: Vec<(u32, Record)>) -> StoreResult<Vec<StoreResult<u64>>> {
        let topic = self.topic(queue).await?;
        let producer = self.producer();
        let mut sent = produce::send(&producer, &self.options, &topic, &records).await;
        // Records refused for a stale producer were not written: a new producer sends them once more.
        let again: Vec<usize> = (0..sent.len()).filter(|&i| sent[i].as_ref().is_err_and(produce::stale)).collect();
        if !again.is_empty() {
            let fresh = self.renew_producer(&producer)?;
            let resend: Vec<(u32, Record)> = again.iter().map(|&i| records[i].clone()).collect();
            for (i, answer) in again.into_iter().zip(produce::send(&fresh, &self.options, &topic, &resend).await) {
                sent[i] = answer;
            }
        }
        let answered: Vec<StoreResult<u64>> =
            sent.into_iter().map(|r| r.map_err(|e| store_error("appending", &e))).collect();
        // A record refused (unknown topic, or an unnamed error) is a missing log, refusing the
        // whole call as the port says, when the topic is gone.
        if answered.iter().any(|r| matches!(r, Err(StoreError::NotFound)))
            || answered.iter().any(|r| matches!(r, Err(StoreError::Failed(_))))
                && matches!(self.readers.partition_count(&topic).await, Err(StoreError::NotFound))
        {
            return Err(StoreError::NotFound);
        }
        Ok(answered)
    }

    async fn read_range(
        &self,
        queue: QueueId,
        partition: u32,
        from: u64,
        limit: ReadLimit,
    ) -> StoreResult<Vec<(u64, Record)>> {
        let topic = self.topic(queue).await?;
        self.readers.read(&topic, partition, from, limit).await
    }

    async fn partitions(&self, queue: QueueId) -> StoreResult<Vec<PartitionInfo>> {
        let topic = self.topic(queue).await?;
        self.readers.partitions(&topic).await
    }

    async fn trim(&self, queue: QueueId, before: Timestamp, max_bytes: Option<u64>) -> StoreResult<u64> {
        let topic = self.topic(queue).await?;
        admin::trim(&self.admin, &self.options, &self.readers, &topic, before, max_bytes).await
    }

    async fn describe(&self) -> StoreResult<BackendInfo> {
        self.readers.describe().await
    }

    fn retains_by_itself(&self) -> bool {
        true
    }
}

/// A Kafka error as the port's: the brokers' outages and timeouts may pass, anything else fails.
fn store_error(what: &str, e: &rdkafka::error::KafkaError) -> StoreError {
    use rdkafka::error::KafkaError as K;
    match e {
        K::Canceled => StoreError::unavailable(format!("{what}: {e}")),
        // rdkafka names no code for an admin call's own failure, though it has one.
        K::AdminOp(code) => code_error(what, Some(*code), e),
        _ => code_error(what, e.rdkafka_error_code(), e),
    }
}

/// An error code, of the client or of a broker's answer, as the port's error.
fn code_error(what: &str, code: Option<rdkafka::types::RDKafkaErrorCode>, e: &dyn std::fmt::Display) -> StoreError {
    use rdkafka::types::RDKafkaErrorCode as C;
    match code {
        Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition) => StoreError::NotFound,
        Some(C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidRecord) => refused("message", e),
        Some(C::InvalidReplicationFactor) => refused("replication", e),
        Some(C::InvalidPartitions) => refused("partitions", e),
        Some(C::InvalidConfig) => refused("retention", e),
        Some(C::InvalidTopic) => refused("name", e),
        Some(
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::QueueFull
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NetworkException
            | C::TimedOutQueue
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotController
            | C::BrokerNotAvailable
            | C::Resolve
            | C::ThrottlingQuotaExceeded
            // The broker's own unexpected error (UNKNOWN_SERVER_ERROR): the broker failed, not the request.
            | C::Unknown,
        ) => StoreError::Unavailable { reason: format!("{what}: {e}"), retry_after: Some(Duration::from_secs(1)) },
        _ => failed(what, e),
    }
}

/// The brokers refuse `field` as given.
fn refused(field: &'static str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Refused { field, reason: format!("the brokers refuse it: {e}") }
}

fn failed(what: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("{what}: {e}"))
}
