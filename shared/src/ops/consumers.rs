//! Consumer registration: optional, but a registered consumer's limits hold.

use super::Service;
use crate::{auth::Principal, domain::QueueName, error::Result, ports::ConsumerRecord};

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
        Ok(record)
    }
}
