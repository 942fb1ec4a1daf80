//! Health: the backend's answer and what this process and the stores count.

use std::time::{Duration, Instant};

use super::{ConsumerCount, Service};
use crate::{domain::Timestamp, ports::BackendInfo};

/// Totals of queues or consumers, split by whether they are active.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounts {
    pub total: u64,
    pub active: u64,
}

/// One backend's answer to its check.
#[derive(Debug, Clone)]
pub struct BackendCheck {
    /// What it is, as the backend says; `Err` with the reason when it did not answer.
    pub answer: Result<BackendInfo, String>,
    pub latency: Duration,
}

impl BackendCheck {
    pub fn up(&self) -> bool {
        self.answer.is_ok()
    }

    pub fn info(&self) -> Option<&BackendInfo> {
        self.answer.as_ref().ok()
    }

    pub fn error(&self) -> Option<&str> {
        self.answer.as_ref().err().map(String::as_str)
    }
}

/// What both health endpoints report.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The message log (spec 000's broker).
    pub log: BackendCheck,
    /// The metadata store (queues, subscriptions, delivery state).
    pub metadata: BackendCheck,
    /// Subscriptions paused because their callbacks failed every attempt for long: push
    /// delivery is failing there, though the service works.
    pub failing_subscriptions: Vec<String>,
    pub queues: QueueCounts,
    pub consumers: QueueCounts,
    pub uptime: Duration,
    /// Every process's figures over the last minutes (empty when the store could not answer).
    pub performance: super::Window,
    pub checked_at: Timestamp,
}

impl HealthReport {
    /// Every backend answered.
    pub fn healthy(&self) -> bool {
        self.log.up() && self.metadata.up()
    }

    /// Healthy, but push delivery is failing for some subscription.
    pub fn degraded(&self) -> bool {
        self.healthy() && !self.failing_subscriptions.is_empty()
    }
}

/// How long a backend's check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one check, timing it and bounding it by [`CHECK_TIMEOUT`].
async fn check(f: impl std::future::Future<Output = crate::ports::StoreResult<BackendInfo>>) -> BackendCheck {
    let started = Instant::now();
    let answer = match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    BackendCheck { answer, latency: started.elapsed() }
}

impl Service {
    /// Checks every backend (at once) and gathers the counts; never fails, reports instead.
    pub async fn health(&self) -> HealthReport {
        let (log, metadata) = tokio::join!(check(self.log.describe()), check(self.meta.describe()));
        let metadata_up = metadata.up();
        let now = self.now();
        let (per_queue, performance) = if metadata_up {
            (self.consumer_counts().await.unwrap_or_default(), self.recent(None).await.ok())
        } else {
            (Vec::new(), None)
        };
        let (queues, consumers) = counts(&per_queue);
        let failing_subscriptions = per_queue.into_iter().flat_map(|c| c.failing).collect();
        let performance = performance.unwrap_or_else(|| super::Window::empty(now));
        HealthReport {
            log,
            metadata,
            failing_subscriptions,
            queues,
            consumers,
            uptime: self.started.elapsed(),
            performance,
            checked_at: now,
        }
    }
}

/// Queues (active: with a consumer) and consumers (active: not paused), from the same per-queue
/// figures queue status shows.
fn counts(per_queue: &[ConsumerCount]) -> (QueueCounts, QueueCounts) {
    let consumers = per_queue.iter().map(ConsumerCount::total).sum();
    let paused: u64 = per_queue.iter().map(|c| c.paused).sum();
    let active_queues = per_queue.iter().filter(|c| c.total() > 0).count() as u64;
    (
        QueueCounts { total: per_queue.len() as u64, active: active_queues },
        QueueCounts { total: consumers, active: consumers - paused },
    )
}
