//! The metrics report both API families answer: every process's figures over a range, per
//! queue and merged, beside each queue's present backlog and consumers.

use super::{QueueStatus, Service, Window};
use crate::{
    domain::{Figures, QueueName, Timestamp},
    error::{Error, Result},
    ports::NO_QUEUE,
};

/// Longest range a report may cover: the statistics' retention.
const MAX_RANGE_MS: i64 = super::KEEP_MS as i64;
/// The range a report covers when it names no start.
const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

/// Most steps a series may have.
const MAX_STEPS: u64 = 1_440;

/// A report over `[from, to)`.
#[derive(Debug, Clone)]
pub struct MetricsReport {
    /// Every selected queue's figures merged, with those of calls naming no known queue when no
    /// queue was selected.
    pub all: Window,
    pub queues: Vec<QueueMetrics>,
    /// Width of each step of the series, when asked for.
    pub step_ms: Option<u64>,
    /// `all`'s figures step by step (empty unless a step was asked for).
    pub series: Vec<Figures>,
    pub generated_at: Timestamp,
}

/// One queue: its status now and its figures over the range.
#[derive(Debug, Clone)]
pub struct QueueMetrics {
    pub status: QueueStatus,
    pub window: Window,
    /// The range's figures step by step (empty unless a step was asked for).
    pub series: Vec<Figures>,
}

impl Service {
    /// The report over `[from, to)` (default: the last 24 hours up to now), of one queue or all,
    /// with each queue's figures in steps of `step_ms` when given.
    pub async fn metrics_report(
        &self,
        queue: Option<&QueueName>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        step_ms: Option<u64>,
    ) -> Result<MetricsReport> {
        let now = self.now();
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(Timestamp(to.0 - DEFAULT_RANGE_MS));
        if from >= to {
            return Err(Error::invalid("date_from", "must be before the end of the range"));
        }
        if to.0 - from.0 > MAX_RANGE_MS {
            return Err(Error::invalid("date_from", "the range may cover at most 30 days, the statistics' retention"));
        }
        if let Some(step) = step_ms
            && (step == 0 || (to.0 - from.0) as u64 / step >= MAX_STEPS)
        {
            return Err(Error::invalid("interval", format!("must split the range into at most {MAX_STEPS} steps")));
        }
        let selected = match queue {
            Some(name) => vec![self.existing_queue(name).await?],
            None => self.meta.queues().await?,
        };
        let only = (selected.len() == 1 && queue.is_some()).then(|| selected[0].id);
        let mut figures = self.figures(only, from, to).await?;
        let mut series = match step_ms {
            Some(step) => self.series(only, from, to, step).await?,
            None => Default::default(),
        };
        let mut all = Window { from, to, figures: figures.remove(&NO_QUEUE).unwrap_or_default() };
        let mut all_series = series.remove(&NO_QUEUE).unwrap_or_default();
        let mut queues = Vec::with_capacity(selected.len());
        for q in selected {
            let window = Window { from, to, figures: figures.remove(&q.id).unwrap_or_else(Figures::default) };
            all.figures.merge(&window.figures);
            let steps = series.remove(&q.id).unwrap_or_else(|| match step_ms {
                Some(step) => vec![Figures::default(); ((to.0 - from.0) as u64).div_ceil(step) as usize],
                None => Vec::new(),
            });
            all_series.resize_with(steps.len(), Figures::default);
            for (sum, step) in all_series.iter_mut().zip(&steps) {
                sum.merge(step);
            }
            queues.push(QueueMetrics { status: self.status_of(q).await?, window, series: steps });
        }
        // Figures of queues deleted since are left out: their names are gone.
        Ok(MetricsReport { all, queues, step_ms, series: all_series, generated_at: now })
    }
}
