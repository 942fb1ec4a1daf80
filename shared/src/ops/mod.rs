//! The operations: framework-free, one file per area. Handlers parse input
//! into these commands, call one method of [`Service`], and map its result.

mod backlog;
mod consume;
mod consumers;
mod counting;
mod dead_letter;
mod depth;
mod dispatch;
mod handed_out;
mod health;
mod messages;
mod publish;
mod push;
mod queue_cache;
mod queues;
mod reading;
mod recent;
mod report;
mod screening;
mod settle;
mod signals;
mod statistics;
mod subscriptions;
mod wakeups;

use std::{
    sync::{Arc, atomic::AtomicU32},
    time::Instant,
};

pub use consume::{Consume, Delivered};
pub use consumers::Registration;
pub use depth::GroupLag;
pub use dispatch::run_dispatcher;
pub use health::{BackendCheck, HealthReport, QueueCounts};
pub use messages::{MessageStatus, MessageView};
pub use publish::{Publish, Published};
pub use push::{PushItem, PushOutcome};
pub use queues::{ConsumerCount, QueueDeclaration, QueueStatus, TopicSpec, parse_arguments};
pub use report::{MetricsReport, QueueMetrics};
pub use settle::{Receipt, SettleCommand, SettleKind, Settled};
pub use signals::run_signals;
pub use statistics::{BUCKET_MS, KEEP_MS, RECENT_MS, ROLL_UPS, WIDEST_MS, Window};
pub use subscriptions::NewSubscription;

use crate::{
    auth::Principal,
    callback::{Resolve, SystemResolver},
    clock::{Clock, SystemClock},
    config::Config,
    domain::{QueueName, Timestamp},
    error::{Error, Result, StoreError},
    ports::{
        ConsumerRegistry, LeaseStore, LogSpec, MessageLog, MetadataStore, PushLog, Queue, QueueArguments, QueueId,
        QueueSettings, QueueStats, RateLimiter, Signals, Statistics,
    },
};
use queue_cache::QueueCache;
use wakeups::{Stopping, Wakeups};

pub use crate::domain::MAX_PARTITIONS;

/// The service: configuration, the ports, the clock and this process's figures.
#[derive(Clone)]
pub struct Service {
    pub config: Arc<Config>,
    log: Arc<dyn MessageLog>,
    meta: Arc<dyn MetadataStore>,
    leases: Arc<dyn LeaseStore>,
    registry: Arc<dyn ConsumerRegistry>,
    limiter: Arc<dyn RateLimiter>,
    push: Arc<dyn PushLog>,
    stats: Arc<dyn QueueStats>,
    statistics: Arc<dyn Statistics>,
    signals: Arc<dyn Signals>,
    clock: Arc<dyn Clock>,
    /// Resolves callback hosts, at subscribe time and at delivery.
    resolver: Arc<dyn Resolve>,
    figures: Arc<statistics::Recorder>,
    wakeups: Arc<Wakeups>,
    stopping: Arc<Stopping>,
    queues: Arc<QueueCache>,
    seen: Arc<consume::Seen>,
    /// Partitions with more records than a group's last lease took.
    backlog: Arc<backlog::Backlog>,
    registrations: Arc<consumers::Registrations>,
    /// Publish times of records this process handed out, to time their acknowledgements.
    handed_out: Arc<handed_out::HandedOut>,
    started: Instant,
    next_partition: Arc<AtomicU32>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The backends behind the ports; a deployment may mix them.
#[derive(Clone)]
pub struct Backends {
    pub log: Arc<dyn MessageLog>,
    pub meta: Arc<dyn MetadataStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub registry: Arc<dyn ConsumerRegistry>,
    pub limiter: Arc<dyn RateLimiter>,
    pub push: Arc<dyn PushLog>,
    pub stats: Arc<dyn QueueStats>,
    pub statistics: Arc<dyn Statistics>,
    /// Wake-up hints between processes; [`crate::ports::NoSignals`] unless the store has them.
    pub signals: Arc<dyn Signals>,
}

impl Backends {
    /// Every port served by one store.
    pub fn all<S>(store: Arc<S>) -> Self
    where
        S: MessageLog + MetadataStore + LeaseStore + ConsumerRegistry + RateLimiter + PushLog + QueueStats + Statistics,
    {
        Self {
            log: store.clone(),
            meta: store.clone(),
            leases: store.clone(),
            registry: store.clone(),
            limiter: store.clone(),
            push: store.clone(),
            stats: store.clone(),
            statistics: store,
            signals: Arc::new(crate::ports::NoSignals),
        }
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").finish_non_exhaustive()
    }
}

impl Service {
    pub fn new(config: Config, backends: Backends) -> Self {
        Self {
            config: Arc::new(config),
            log: backends.log,
            meta: backends.meta,
            leases: backends.leases,
            registry: backends.registry,
            limiter: backends.limiter,
            push: backends.push,
            stats: backends.stats,
            statistics: backends.statistics,
            signals: backends.signals,
            clock: Arc::new(SystemClock),
            resolver: Arc::new(SystemResolver),
            figures: Arc::default(),
            wakeups: Arc::default(),
            stopping: Arc::default(),
            queues: Arc::default(),
            seen: Arc::default(),
            backlog: Arc::default(),
            registrations: Arc::default(),
            handed_out: Arc::default(),
            started: Instant::now(),
            next_partition: Arc::default(),
        }
    }

    /// The same service reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Begins stopping: waiting long polls answer with what they have (nothing) at once,
    /// new ones do not wait, and the dispatcher ends. Writes in flight finish.
    pub fn stop(&self) {
        self.stopping.stop();
    }

    /// The same service resolving callback hosts through `resolver`.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Settings of a queue made without a declaration.
    fn default_settings(&self) -> QueueSettings {
        QueueSettings {
            durable: true,
            auto_delete: false,
            exclusive: false,
            arguments: QueueArguments::default(),
            partitions: self.config.default_partitions,
            replication: 1,
            retention_ms: None,
            max_bytes: None,
        }
    }

    /// The queue of that name, created with defaults when missing and `create` allows it.
    async fn resolve_queue(&self, caller: &Principal, name: &QueueName, create: bool) -> Result<Queue> {
        let queue = match self.cached_queue(name).await? {
            Some(q) => q,
            None if create && self.config.auto_create_queues => {
                match self.create_queue(name, &self.default_settings(), None).await? {
                    Some(q) => q,
                    // Another request made it first.
                    None => self.existing_queue(name).await?,
                }
            }
            None => return Err(Error::QueueNotFound { queue: name.to_string() }),
        };
        check_access(caller, &queue)?;
        Ok(queue)
    }

    /// Creates a queue and its log; `None` when the name is taken.
    async fn create_queue(
        &self,
        name: &QueueName,
        settings: &QueueSettings,
        owner: Option<&str>,
    ) -> Result<Option<Queue>> {
        let queue = match self.meta.create_queue(name, settings, owner, self.now()).await {
            Ok(queue) => queue,
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = self.log.create_log(queue.id, &log_spec(&queue.settings)).await {
            // No queue names a log that could not be made: undone, the same declaration can be
            // sent again (a log made after all is found and used then).
            if let Err(undo) = self.meta.delete_queue(queue.id).await {
                tracing::warn!(queue = %name, error = %undo, "a queue whose log could not be made stays declared");
            }
            return Err(e.into());
        }
        self.queues.put(&queue);
        Ok(Some(queue))
    }

    async fn existing_queue(&self, name: &QueueName) -> Result<Queue> {
        self.cached_queue(name).await?.ok_or_else(|| Error::QueueNotFound { queue: name.to_string() })
    }

    /// The queue of that name, if it exists, from the [`QueueCache`] when it holds it.
    async fn cached_queue(&self, name: &QueueName) -> Result<Option<Queue>> {
        if let Some(queue) = self.queues.get(name) {
            return Ok(Some(queue));
        }
        let queue = self.meta.queue(name).await?;
        if let Some(q) = &queue {
            self.queues.put(q);
        }
        Ok(queue)
    }

    /// The queue with that id, if it exists, from the [`QueueCache`] when it holds it.
    async fn queue_by_id(&self, id: QueueId) -> Result<Option<Queue>> {
        if let Some(queue) = self.queues.get_by_id(id) {
            return Ok(Some(queue));
        }
        let queue = self.meta.queue_by_id(id).await?;
        if let Some(q) = &queue {
            self.queues.put(q);
        }
        Ok(queue)
    }
}

/// What a queue's log is made with.
fn log_spec(settings: &QueueSettings) -> LogSpec {
    LogSpec {
        partitions: settings.partitions,
        replication: settings.replication,
        retention_ms: settings.retention_ms,
        max_bytes: settings.max_bytes,
    }
}

/// An exclusive queue is used by the principal that declared it and no other.
fn check_access(caller: &Principal, queue: &Queue) -> Result<()> {
    match &queue.owner {
        Some(owner) if queue.settings.exclusive && owner != &caller.subject => Err(Error::Forbidden {
            reason: format!("queue {} is exclusive to the principal that declared it", queue.name),
        }),
        _ => Ok(()),
    }
}
