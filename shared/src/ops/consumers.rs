//! Consumer registration: optional, but a registered consumer's limits hold. A process trusts
//! what it read of a registration for up to [`TTL`], as it does a queue's record: its own
//! registrations take effect at once, another process's within that second.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{Service, recent::Recent};
use crate::{auth::Principal, domain::QueueName, error::Result, ports::ConsumerRecord};

/// How long a registration read from the registry is trusted.
const TTL: Duration = Duration::from_secs(1);
/// Registrations remembered before the cache starts over.
const KEPT: usize = 10_000;

/// Registrations read lately, by (group, consumer); `None` for a consumer not registered.
#[derive(Debug)]
pub(super) struct Registrations(Recent<(String, String), Option<Arc<ConsumerRecord>>>);

impl Default for Registrations {
    fn default() -> Self {
        Self(Recent::new(TTL, KEPT))
    }
}

/// A consumer to register, already validated.
#[derive(Debug, Clone)]
pub struct Registration {
    pub consumer: String,
    pub group: String,
    pub topics: Vec<QueueName>,
    /// Most unacknowledged messages it may hold.
    pub max_concurrency: Option<u32>,
    /// Most messages per second it may take.
    pub rate_limit: Option<u32>,
}

impl Service {
    /// Registers a consumer (again); existing topics must be usable by the caller.
    pub async fn register_consumer(&self, caller: &Principal, reg: Registration) -> Result<ConsumerRecord> {
        for topic in &reg.topics {
            if let Some(queue) = self.meta.queue(topic).await? {
                super::check_access(caller, &queue)?;
            }
        }
        let record = ConsumerRecord {
            group: reg.group,
            consumer: reg.consumer,
            topics: reg.topics.iter().map(ToString::to_string).collect(),
            max_concurrency: reg.max_concurrency,
            rate_limit: reg.rate_limit,
            registered_at: self.now(),
            last_seen_at: None,
        };
        self.registry.register_consumer(&record).await?;
        self.limiter.reset(&record.group, &record.consumer).await?;
        let key = (record.group.clone(), record.consumer.clone());
        self.registrations.0.put(key, Instant::now(), Some(Arc::new(record.clone())));
        Ok(record)
    }

    /// A consumer's registration, as the registry had it at most [`TTL`] ago.
    pub(super) async fn registration(&self, group: &str, consumer: &str) -> Result<Option<Arc<ConsumerRecord>>> {
        let key = (group.to_owned(), consumer.to_owned());
        if let Some((_, known)) = self.registrations.0.get(&key) {
            return Ok(known);
        }
        let read = Instant::now();
        let record = self.registry.consumer(group, consumer).await?.map(Arc::new);
        self.registrations.0.put(key, read, record.clone());
        Ok(record)
    }
}
