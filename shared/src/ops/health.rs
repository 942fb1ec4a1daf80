//! Health: the backend's answer and what this process and the stores count.

use std::time::{Duration, Instant};

use super::{ConsumerCount, Service};
use crate::{domain::Timestamp, metrics::QueuePerformance, ports::BackendInfo};

/// Totals of queues or consumers, split by whether they are active.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounts {
    pub total: u64,
    pub active: u64,
}

/// What both health endpoints report.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// `None` when the backend did not answer.
    pub backend: Option<BackendInfo>,
    pub backend_error: Option<String>,
    pub backend_latency: Duration,
    pub queues: QueueCounts,
    pub consumers: QueueCounts,
    pub uptime: Duration,
    pub performance: QueuePerformance,
    pub error_rate: f64,
    pub checked_at: Timestamp,
}

impl HealthReport {
    pub fn healthy(&self) -> bool {
        self.backend.is_some()
    }
}

impl Service {
    /// Checks the backend and gathers the counts; never fails, reports instead.
    pub async fn health(&self) -> HealthReport {
        let started = Instant::now();
        let described = self.log.describe().await;
        let backend_latency = started.elapsed();
        let (queues, consumers) = self.counts().await.unwrap_or_default();
        let now = self.now();
        HealthReport {
            backend_error: described.as_ref().err().map(ToString::to_string),
            backend: described.ok(),
            backend_latency,
            queues,
            consumers,
            uptime: self.started.elapsed(),
            performance: self.metrics.overall(now),
            error_rate: self.metrics.error_rate(),
            checked_at: now,
        }
    }

    /// Queues (active: with a consumer) and consumers (active: not paused), from the same
    /// per-queue figures queue status shows.
    async fn counts(&self) -> crate::error::Result<(QueueCounts, QueueCounts)> {
        let per_queue = self.consumer_counts().await?;
        let consumers = per_queue.iter().map(ConsumerCount::total).sum();
        let paused: u64 = per_queue.iter().map(|c| c.paused).sum();
        Ok((
            QueueCounts {
                total: per_queue.len() as u64,
                active: per_queue.iter().filter(|c| c.total() > 0).count() as u64,
            },
            QueueCounts { total: consumers, active: consumers - paused },
        ))
    }
}
