//! Queue and topic administration, and the status both families report.

use serde_json::{Map, Value};

use super::{MAX_PARTITIONS, Service, check_access};
use crate::{
    auth::Principal,
    domain::{QueueName, Timestamp},
    error::{Error, Result, StoreError},
    ports::{GroupPosition, PartitionInfo, Queue, QueueArguments, QueueCounters, QueueSettings},
};

/// A consumer counts as attached while it consumed within this window: 5 minutes.
const ACTIVE_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A RabbitMQ-style declaration (`PUT /message-queue/queues/{name}`).
#[derive(Debug, Clone, Default)]
pub struct QueueDeclaration {
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: QueueArguments,
    /// Partitions: the default when a queue is made without; a redeclaration may add some, never remove.
    pub partitions: Option<u32>,
}

/// A Kafka-style topic creation (`POST /api/v1/topics`).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: QueueName,
    pub partitions: Option<u32>,
    pub replication: u32,
    pub retention_ms: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// A queue's consumers: its push subscriptions (some maybe paused) and the consumers seen on it lately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerCount {
    pub queue: String,
    pub subscriptions: u64,
    pub paused: u64,
    /// Ids of the subscriptions paused because their callbacks failed every attempt for long.
    pub failing: Vec<String>,
    pub seen: u64,
}

impl ConsumerCount {
    /// What a queue's status shows as `consumer_count`.
    pub fn total(&self) -> u64 {
        self.subscriptions + self.seen
    }
}

/// A queue with its live counts.
#[derive(Debug, Clone)]
pub struct QueueStatus {
    pub queue: Queue,
    /// Messages not yet finished by the slowest group (every live message when no group consumes).
    pub message_count: u64,
    /// Of those, the ones leased to a consumer now.
    pub unacknowledged: u64,
    pub consumer_count: u64,
    pub messages_published: u64,
    pub counters: QueueCounters,
    pub groups: Vec<GroupPosition>,
    /// Each group's lag (the queue's own backlog while no group consumes).
    pub lags: Vec<super::GroupLag>,
    /// When the counts and lags were taken.
    pub measured_at: Timestamp,
    pub partitions: Vec<PartitionInfo>,
    /// Every process's figures for this queue over the last minutes.
    pub performance: super::Window,
    /// Latest of the last configuration change and the last publish.
    pub last_updated: Timestamp,
}

impl QueueStatus {
    /// `active` while a consumer or subscription is attached, else `idle`.
    pub fn state(&self) -> &'static str {
        if self.consumer_count > 0 { "active" } else { "idle" }
    }

    /// Seconds since the oldest message some group has not finished was published.
    pub fn oldest_unfinished_seconds(&self) -> f64 {
        self.lags.iter().map(|l| l.seconds(self.measured_at)).fold(0.0, f64::max)
    }
}

/// Reads the `arguments` object of a declaration; names it does not understand are refused.
pub fn parse_arguments(args: &Map<String, Value>) -> Result<QueueArguments> {
    let mut parsed = QueueArguments::default();
    for (name, value) in args {
        let field = format!("arguments.{name}");
        let positive =
            || value.as_u64().filter(|&n| n > 0).ok_or_else(|| Error::invalid(&field, "must be a positive integer"));
        match name.as_str() {
            "x-message-ttl" => parsed.message_ttl_ms = Some(positive()?),
            "x-max-length" => parsed.max_length = Some(positive()?),
            "x-delivery-limit" => {
                let n = positive()?;
                parsed.delivery_limit = Some(u32::try_from(n).map_err(|_| Error::invalid(&field, "is too large"))?);
            }
            "x-dead-letter-queue" => {
                let name = value.as_str().ok_or_else(|| Error::invalid(&field, "must be a queue name"))?;
                parsed.dead_letter_queue = Some(QueueName::parse(name).map_err(|e| Error::invalid(&field, e))?);
            }
            _ => {
                return Err(Error::invalid(
                    field,
                    "unknown argument; supported: x-message-ttl, x-max-length, x-dead-letter-queue, x-delivery-limit",
                ));
            }
        }
    }
    Ok(parsed)
}

impl Service {
    /// Creates a queue or replaces its declaration; true when it was created.
    pub async fn declare_queue(
        &self,
        caller: &Principal,
        name: &QueueName,
        decl: QueueDeclaration,
    ) -> Result<(QueueStatus, bool)> {
        if let Some(n) = decl.partitions {
            check_partitions(n)?;
        }
        self.queues.evict(name);
        let (queue, created) = match self.meta.queue(name).await? {
            Some(existing) => {
                check_access(caller, &existing)?;
                if existing.settings.exclusive != decl.exclusive {
                    return Err(Error::Conflict {
                        reason: format!("queue {name} exists; 'exclusive' cannot change after creation"),
                    });
                }
                let partitions = decl.partitions.unwrap_or(existing.settings.partitions);
                if partitions < existing.settings.partitions {
                    return Err(Error::Conflict {
                        reason: format!(
                            "queue {name} has {} partitions; partitions can be added, not removed",
                            existing.settings.partitions
                        ),
                    });
                }
                let settings = QueueSettings {
                    durable: decl.durable,
                    auto_delete: decl.auto_delete,
                    arguments: decl.arguments,
                    partitions,
                    ..existing.settings
                };
                // The log first: a queue never names partitions its log does not have.
                self.log.create_log(existing.id, &super::log_spec(&settings)).await?;
                (self.meta.update_queue(existing.id, &settings, self.now()).await.map_err(|e| gone(e, name))?, false)
            }
            None => {
                let defaults = self.default_settings();
                let settings = QueueSettings {
                    durable: decl.durable,
                    auto_delete: decl.auto_delete,
                    exclusive: decl.exclusive,
                    arguments: decl.arguments,
                    partitions: decl.partitions.unwrap_or(defaults.partitions),
                    ..defaults
                };
                let owner = decl.exclusive.then_some(caller.subject.as_str());
                let queue = self.create_queue(name, &settings, owner).await?.ok_or_else(|| Error::Conflict {
                    reason: format!("queue {name} was declared concurrently; retry"),
                })?;
                (queue, true)
            }
        };
        // Replaces whatever a concurrent lookup cached between the eviction above and the write.
        self.queues.put(&queue);
        Ok((self.status_of(queue).await?, created))
    }

    /// Creates a topic; `TopicExists` when the name is taken.
    pub async fn create_topic(&self, spec: TopicSpec) -> Result<QueueStatus> {
        let partitions = spec.partitions.unwrap_or(self.config.default_partitions);
        check_partitions(partitions)?;
        let settings = QueueSettings {
            partitions,
            replication: spec.replication,
            retention_ms: spec.retention_ms,
            max_bytes: spec.max_bytes,
            ..self.default_settings()
        };
        let queue = self
            .create_queue(&spec.name, &settings, None)
            .await?
            .ok_or_else(|| Error::TopicExists { topic: spec.name.to_string() })?;
        self.status_of(queue).await
    }

    /// The status of one queue.
    pub async fn queue_status(&self, caller: &Principal, name: &QueueName) -> Result<QueueStatus> {
        let queue = self.existing_queue(name).await?;
        check_access(caller, &queue)?;
        self.status_of(queue).await
    }

    /// The status of every queue, by name.
    pub async fn list_queues(&self) -> Result<Vec<QueueStatus>> {
        let mut all = Vec::new();
        for queue in self.meta.queues().await? {
            all.push(self.status_of(queue).await?);
        }
        Ok(all)
    }

    /// Deletes a queue with its records and subscriptions.
    pub async fn delete_queue(&self, caller: &Principal, name: &QueueName) -> Result<()> {
        let queue = self.existing_queue(name).await?;
        check_access(caller, &queue)?;
        let deleted = self.meta.delete_queue(queue.id).await?;
        self.queues.evict(name);
        if !deleted {
            return Err(Error::QueueNotFound { queue: name.to_string() });
        }
        self.log.delete_log(queue.id).await?;
        self.leases.forget_queue(queue.id).await?;
        self.push.forget_queue(queue.id).await?;
        self.registry.forget_queue(queue.id).await?;
        self.stats.forget_queue(queue.id).await?;
        Ok(())
    }

    /// Applies every queue's retention (age, then size); returns the records removed.
    pub async fn enforce_retention(&self) -> Result<u64> {
        let now = self.now();
        let (mut removed, mut failed) = (0, None);
        for queue in self.meta.queues().await? {
            // One queue's failure does not keep the others from their retention.
            match self.retain(&queue, now).await {
                Ok(trimmed) => removed += trimmed,
                Err(e) => {
                    tracing::warn!(queue = %queue.name, error = ?e, "retention of a queue failed");
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(removed), Err)
    }

    /// Trims one queue's log to its retention and forgets what was leased of the records gone;
    /// a log that retains by itself is not trimmed, only followed.
    async fn retain(&self, queue: &Queue, now: Timestamp) -> Result<u64> {
        let trimmed = if self.log.retains_by_itself() {
            0
        } else {
            let retention = queue.settings.retention_ms.unwrap_or(self.config.default_retention_ms);
            let before = Timestamp(now.0.saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX)));
            self.log.trim(queue.id, before, queue.settings.max_bytes).await?
        };
        if trimmed > 0 || self.log.retains_by_itself() {
            let starts: Vec<(u32, u64)> =
                self.log.partitions(queue.id).await?.iter().map(|p| (p.partition, p.start_offset)).collect();
            if trimmed > 0 || starts.iter().any(|(_, start)| *start > 0) {
                self.backlog.forget(queue.id);
                self.leases.forget_below(queue.id, &starts).await?;
            }
        }
        Ok(trimmed)
    }

    /// Each queue's consumers, as its status counts them: push subscriptions plus consumers
    /// seen in the last minute. Health and the Prometheus gauge add up the same figures.
    pub async fn consumer_counts(&self) -> Result<Vec<ConsumerCount>> {
        let since = Timestamp(self.now().0 - ACTIVE_WINDOW_MS);
        let subscriptions = self.meta.subscriptions(None).await?;
        let mut out = Vec::new();
        for queue in self.meta.queues().await? {
            let subs: Vec<_> = subscriptions.iter().filter(|s| s.queue_id == queue.id).collect();
            out.push(ConsumerCount {
                seen: self.registry.active_consumers(queue.id, queue.name.as_str(), since).await?,
                subscriptions: subs.len() as u64,
                paused: subs.iter().filter(|s| !s.is_active()).count() as u64,
                failing: subs
                    .iter()
                    .filter(|s| !s.is_active())
                    .filter(|s| s.paused_reason.as_deref().is_some_and(|r| r.starts_with(super::push::AUTO_PAUSED)))
                    .map(|s| s.id.clone())
                    .collect(),
                queue: queue.name.to_string(),
            });
        }
        Ok(out)
    }

    pub(super) async fn status_of(&self, queue: Queue) -> Result<QueueStatus> {
        let now = self.now();
        let partitions = every_partition(queue.settings.partitions, self.log.partitions(queue.id).await?);
        let groups = self.leases.groups(queue.id).await?;
        let lags = self.lags(&queue, &partitions, &groups, now).await?;
        let (message_count, unacknowledged) = super::depth::deepest(&lags);
        let since = Timestamp(now.0 - ACTIVE_WINDOW_MS);
        let subscriptions = self.meta.subscriptions(Some(queue.id)).await?.len() as u64;
        let consumers = self.registry.active_consumers(queue.id, queue.name.as_str(), since).await?;
        let last_publish = partitions.iter().filter_map(|p| p.last_published_at).max();
        Ok(QueueStatus {
            message_count,
            unacknowledged,
            consumer_count: subscriptions + consumers,
            messages_published: partitions.iter().map(|p| p.end_offset).sum(),
            counters: self.stats.counters(queue.id).await?,
            groups,
            lags,
            measured_at: now,
            performance: self.recent(Some(queue.id)).await?,
            last_updated: last_publish.map_or(queue.updated_at, |t| t.max(queue.updated_at)),
            partitions,
            queue,
        })
    }
}

/// One entry per partition of the queue, empty ones included.
fn every_partition(count: u32, known: Vec<PartitionInfo>) -> Vec<PartitionInfo> {
    (0..count)
        .map(|partition| {
            known.iter().find(|p| p.partition == partition).copied().unwrap_or_else(|| PartitionInfo::empty(partition))
        })
        .collect()
}

fn check_partitions(n: u32) -> Result<()> {
    if (1..=MAX_PARTITIONS).contains(&n) {
        Ok(())
    } else {
        Err(Error::invalid("partitions", format!("must be 1 to {MAX_PARTITIONS}")))
    }
}

fn gone(e: StoreError, name: &QueueName) -> Error {
    match e {
        StoreError::NotFound => Error::QueueNotFound { queue: name.to_string() },
        e => e.into(),
    }
}
