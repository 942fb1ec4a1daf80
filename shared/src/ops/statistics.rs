//! Figures per queue in 10-second buckets: recorded in this process, flushed to the
//! [`Statistics`] port on a timer, and read back merged over any range, so every process (and
//! every function) answers for all of them. Retention ([`ROLL_UPS`], [`KEEP_MS`]): 10-second
//! buckets for an hour, then minutes for a day, then hours for 30 days, then nothing.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use super::Service;
use crate::{
    domain::{Count, Figures, Latency, MessageId, Op, Timestamp},
    error::{Error, Result},
    ports::{NO_QUEUE, QueueId, StatsBucket},
};

/// Width of the buckets processes record into.
pub const BUCKET_MS: u64 = 10_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// Each step of retention: buckets of a width, older than an age, merge into wider ones.
pub const ROLL_UPS: [(u64, u64, u64); 2] = [(BUCKET_MS, HOUR_MS, MINUTE_MS), (MINUTE_MS, 24 * HOUR_MS, HOUR_MS)];
/// The widest bucket kept.
pub const WIDEST_MS: u64 = HOUR_MS;
/// Age at which buckets are removed.
pub const KEEP_MS: u64 = 30 * 24 * HOUR_MS;
/// How often retention runs, counted in flushes.
const RETENTION_EVERY_FLUSHES: u32 = 60;

/// Figures recorded by this process and not yet flushed.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    pending: Mutex<HashMap<(QueueId, i64), Figures>>,
    /// Held for reading while a range is read, for writing while a flush writes: a reader sees
    /// each figure once, in the store or still pending.
    gate: tokio::sync::RwLock<()>,
}

impl Recorder {
    fn record(&self, queue: QueueId, now: Timestamp, f: impl FnOnce(&mut Figures)) {
        let start = now.0 - now.0.rem_euclid(BUCKET_MS as i64);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        f(pending.entry((queue, start)).or_default());
    }

    fn take(&self) -> Vec<StatsBucket> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        taken.into_iter().map(|((queue, start), figures)| bucket(queue, start, figures)).collect()
    }

    fn put_back(&self, buckets: Vec<StatsBucket>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for b in buckets {
            pending.entry((b.queue, b.start.0)).or_default().merge(&b.figures);
        }
    }

    fn pending(&self, queue: Option<QueueId>, from: Timestamp, to: Timestamp) -> Vec<StatsBucket> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .iter()
            .filter(|((q, start), _)| queue.is_none_or(|want| want == *q) && (from.0..to.0).contains(start))
            .map(|((q, start), figures)| bucket(*q, *start, figures.clone()))
            .collect()
    }
}

fn bucket(queue: QueueId, start: i64, figures: Figures) -> StatsBucket {
    StatsBucket { queue, start: Timestamp(start), width_ms: BUCKET_MS, figures }
}

impl Service {
    /// Records figures of a queue (or of [`NO_QUEUE`]) at the present time.
    pub(super) fn record(&self, queue: QueueId, f: impl FnOnce(&mut Figures)) {
        self.figures.record(queue, self.now(), f);
    }

    /// Counts a call of `op` and, when it failed, its class (a 5xx is the server's).
    pub(super) fn record_outcome<T>(&self, op: Op, queue: Option<QueueId>, outcome: &Result<T>) {
        let [calls, client, server] = op.counts();
        let failed = outcome.as_ref().err().map(|e| if e.status() >= 500 { server } else { client });
        self.record(queue.unwrap_or(NO_QUEUE), |f| {
            f.add(calls, 1);
            if let Some(class) = failed {
                f.add(class, 1);
            }
        });
        crate::telemetry::operation(op, failed.map(|class| class == server));
    }

    /// The id of a queue this process knows by name, without asking the store.
    pub(super) fn known_queue_id(&self, name: &crate::domain::QueueName) -> Option<QueueId> {
        self.queues.get(name).map(|q| q.id)
    }

    /// Times `latency` for a queue.
    pub(super) fn record_latency(&self, queue: QueueId, latency: Latency, took: Duration) {
        self.record(queue, |f| f.record(latency, took));
        crate::telemetry::timed(queue, || self.queue_label(queue), latency, took);
    }

    /// A queue's name for labels, its id while this process does not know it.
    pub(super) fn queue_label(&self, queue: QueueId) -> String {
        self.queues.get_by_id(queue).map_or_else(|| queue.to_string(), |q| q.name.to_string())
    }

    /// Times a message published at `published` and acknowledged at `now`.
    pub(super) fn record_end_to_end(&self, queue: QueueId, published: Timestamp, now: Timestamp) {
        let took = Duration::from_millis(u64::try_from(now.0 - published.0).unwrap_or(0));
        self.record_latency(queue, Latency::EndToEnd, took);
    }

    /// Times messages from their publish (remembered when this process handed them out, else
    /// read from the log, a range read per run of offsets) to their acknowledgement at the time
    /// given with each.
    pub(super) async fn time_end_to_end(&self, acknowledged: &[(MessageId, Timestamp)]) {
        let mut unknown: Vec<(MessageId, Timestamp)> = Vec::new();
        for (id, at) in acknowledged {
            match self.handed_out.take(id) {
                Some(published_at) => self.record_end_to_end(id.queue_id, published_at, *at),
                None => unknown.push((*id, *at)),
            }
        }
        let mut queues: Vec<QueueId> = unknown.iter().map(|(id, _)| id.queue_id).collect();
        queues.sort_unstable();
        queues.dedup();
        for queue in queues {
            let of_queue: Vec<&(MessageId, Timestamp)> =
                unknown.iter().filter(|(id, _)| id.queue_id == queue).collect();
            let positions: Vec<(u32, u64)> = of_queue.iter().map(|(id, _)| (id.partition, id.offset)).collect();
            match self.read_at(queue, &positions).await {
                // Records trimmed since have nothing to time.
                Ok(records) => {
                    for ((_, at), record) in of_queue.iter().zip(records) {
                        if let Some(record) = record {
                            self.record_end_to_end(queue, record.published_at, *at);
                        }
                    }
                }
                Err(e) => tracing::debug!(queue, "not timed end to end: {e}"),
            }
        }
    }

    /// Writes the pending figures to the store; kept for the next flush when it fails.
    pub async fn flush_statistics(&self) -> Result<()> {
        let _writing = self.figures.gate.write().await;
        let buckets = self.figures.take();
        if buckets.is_empty() {
            return Ok(());
        }
        match self.statistics.merge_buckets(buckets.clone()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.figures.put_back(buckets);
                Err(e.into())
            }
        }
    }

    /// Rolls old buckets up into wider ones ([`ROLL_UPS`]) and removes those past [`KEEP_MS`].
    pub async fn statistics_retention(&self) -> Result<()> {
        let now = self.now();
        for (width, after, into) in ROLL_UPS {
            self.statistics.roll_up(width, into, Timestamp(now.0 - after as i64)).await?;
        }
        self.statistics.expire_buckets(Timestamp(now.0 - KEEP_MS as i64)).await?;
        Ok(())
    }

    /// Flushes every `MESSAGE_QUEUE_STATS_FLUSH_MS` until the service stops, then once more.
    pub async fn run_statistics(self) {
        let every = Duration::from_millis(self.config.stats_flush_ms);
        let stopping = self.stopping.wait();
        tokio::pin!(stopping);
        for pass in 1.. {
            let stop = tokio::select! {
                () = tokio::time::sleep(every) => false,
                () = &mut stopping => true,
            };
            if let Err(e) = self.flush_statistics().await {
                tracing::warn!("statistics not flushed, kept for the next flush: {e}");
            }
            if stop {
                return;
            }
            if pass % RETENTION_EVERY_FLUSHES == 0
                && let Err(e) = self.statistics_retention().await
            {
                tracing::warn!("statistics retention failed: {e}");
            }
        }
    }

    /// Every process's figures for the buckets that overlap `[from, to)`, per queue, this
    /// process's unflushed ones included: a range is resolved to its buckets' width.
    pub async fn figures(
        &self,
        queue: Option<QueueId>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<QueueId, Figures>> {
        let mut out: HashMap<QueueId, Figures> = HashMap::new();
        self.each_bucket(queue, from, to, |b| out.entry(b.queue).or_default().merge(&b.figures)).await?;
        Ok(out)
    }

    /// The same figures in consecutive steps of `step_ms` from `from`, per queue; a bucket wider
    /// than a step counts in the step it starts in (or the first).
    pub async fn series(
        &self,
        queue: Option<QueueId>,
        from: Timestamp,
        to: Timestamp,
        step_ms: u64,
    ) -> Result<HashMap<QueueId, Vec<Figures>>> {
        let steps = ((to.0 - from.0).max(1) as u64).div_ceil(step_ms.max(1)) as usize;
        let mut out: HashMap<QueueId, Vec<Figures>> = HashMap::new();
        self.each_bucket(queue, from, to, |b| {
            let step = ((b.start.0 - from.0).max(0) as u64 / step_ms.max(1)) as usize;
            let slots = out.entry(b.queue).or_insert_with(|| vec![Figures::default(); steps]);
            slots[step.min(steps - 1)].merge(&b.figures);
        })
        .await?;
        Ok(out)
    }

    /// Calls `f` with every bucket, stored or still pending here, that overlaps `[from, to)`.
    async fn each_bucket(
        &self,
        queue: Option<QueueId>,
        from: Timestamp,
        to: Timestamp,
        mut f: impl FnMut(&StatsBucket),
    ) -> Result<()> {
        if from > to {
            return Err(Error::invalid("date_from", "must not be after the end of the range"));
        }
        let earliest = Timestamp(from.0.saturating_sub(WIDEST_MS as i64 - 1));
        let _reading = self.figures.gate.read().await;
        let stored = self.statistics.buckets(queue, earliest, to).await?;
        for b in stored.iter().chain(&self.figures.pending(queue, earliest, to)) {
            if b.start.0 + b.width_ms as i64 > from.0 {
                f(b);
            }
        }
        Ok(())
    }
}

/// How far back the `performance` blocks of queue status and health look.
pub const RECENT_MS: u64 = 5 * 60_000;

/// Every process's figures over a stated window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
    pub figures: Figures,
}

impl Window {
    /// The recent window ending at `to`, with nothing in it.
    pub fn empty(to: Timestamp) -> Self {
        Self { from: Timestamp(to.0 - RECENT_MS as i64), to, figures: Figures::default() }
    }

    pub fn seconds(&self) -> f64 {
        (self.to.0 - self.from.0).max(1) as f64 / 1000.0
    }

    /// Messages published per second over the window.
    pub fn throughput_per_second(&self) -> f64 {
        self.figures.count(Count::Published) as f64 / self.seconds()
    }

    /// Share of counted calls (publish, consume, acknowledge, reject) that failed, either side's fault.
    pub fn error_rate(&self) -> f64 {
        let [calls, errors] = Op::ALL
            .iter()
            .map(|op| self.calls_and_errors(*op))
            .fold([0, 0], |[c, e], (calls, errors)| [c + calls, e + errors]);
        ratio(errors, calls)
    }

    /// Share of one operation's calls that failed.
    pub fn op_error_rate(&self, op: Op) -> f64 {
        let (calls, errors) = self.calls_and_errors(op);
        ratio(errors, calls)
    }

    fn calls_and_errors(&self, op: Op) -> (u64, u64) {
        let [calls, client, server] = op.counts();
        (self.figures.count(calls), self.figures.count(client) + self.figures.count(server))
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

impl Service {
    /// Figures of the last [`RECENT_MS`], of one queue or all of them merged.
    pub async fn recent(&self, queue: Option<QueueId>) -> Result<Window> {
        let to = self.now();
        let from = Timestamp(to.0 - RECENT_MS as i64);
        let figures = self.figures(queue, from, to).await?.into_values().fold(Figures::default(), |mut all, f| {
            all.merge(&f);
            all
        });
        Ok(Window { from, to, figures })
    }
}
