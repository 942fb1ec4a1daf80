//! In-process performance figures: publish latency and throughput per queue,
//! and the share of requests answered with a server error. They cover this
//! process since it started; counts that must be true across processes come
//! from the stores instead.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{domain::Timestamp, ports::QueueId};

/// Seconds in the throughput window.
const WINDOW: usize = 60;

/// Figures kept by one process.
#[derive(Debug, Default)]
pub struct Metrics {
    queues: Mutex<HashMap<QueueId, QueueFigures>>,
    requests: AtomicU64,
    server_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct QueueFigures {
    publishes: u64,
    publish_micros: u64,
    consumes: u64,
    consume_micros: u64,
    /// Publishes per second over the last [`WINDOW`] seconds, indexed by second modulo the window.
    window: [u32; WINDOW],
    window_second: [i64; WINDOW],
}

impl Default for QueueFigures {
    fn default() -> Self {
        Self {
            publishes: 0,
            publish_micros: 0,
            consumes: 0,
            consume_micros: 0,
            window: [0; WINDOW],
            window_second: [0; WINDOW],
        }
    }
}

/// Publish figures of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueuePerformance {
    pub average_publish_ms: f64,
    /// Mean time of a consume call that leased messages, long-poll wait excluded.
    pub average_consume_ms: f64,
    pub throughput_per_second: f64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record_request(&self, server_error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if server_error {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Share of answered requests that were server errors.
    pub fn error_rate(&self) -> f64 {
        let requests = self.requests.load(Ordering::Relaxed);
        if requests == 0 {
            return 0.0;
        }
        self.server_errors.load(Ordering::Relaxed) as f64 / requests as f64
    }

    /// Counts one durable publish and how long it took.
    pub fn record_publish(&self, queue: QueueId, took: Duration, now: Timestamp) {
        let second = now.0.div_euclid(1000);
        let slot = second.rem_euclid(WINDOW as i64) as usize;
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let f = queues.entry(queue).or_default();
        f.publishes += 1;
        f.publish_micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if f.window_second[slot] != second {
            f.window_second[slot] = second;
            f.window[slot] = 0;
        }
        f.window[slot] += 1;
    }

    /// Counts one consume call that leased messages, and how long its lease took.
    pub fn record_consume(&self, queue: QueueId, took: Duration) {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let f = queues.entry(queue).or_default();
        f.consumes += 1;
        f.consume_micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    }

    /// Figures of one queue at `now`.
    pub fn queue(&self, queue: QueueId, now: Timestamp) -> QueuePerformance {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.get(&queue).map_or_else(QueuePerformance::default, |f| f.performance(now))
    }

    /// Publish figures over every queue.
    pub fn overall(&self, now: Timestamp) -> QueuePerformance {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let (count, micros) = queues.values().fold((0, 0), |(c, m), f| (c + f.publishes, m + f.publish_micros));
        let (consumes, consume_micros) =
            queues.values().fold((0, 0), |(c, m), f| (c + f.consumes, m + f.consume_micros));
        QueuePerformance {
            average_publish_ms: average_ms(count, micros),
            average_consume_ms: average_ms(consumes, consume_micros),
            throughput_per_second: queues.values().map(|f| f.performance(now).throughput_per_second).sum(),
        }
    }
}

impl QueueFigures {
    fn performance(&self, now: Timestamp) -> QueuePerformance {
        let current = now.0.div_euclid(1000);
        let recent: u64 = (0..WINDOW)
            .filter(|&i| (1..=WINDOW as i64).contains(&(current - self.window_second[i])))
            .map(|i| u64::from(self.window[i]))
            .sum();
        QueuePerformance {
            average_publish_ms: average_ms(self.publishes, self.publish_micros),
            average_consume_ms: average_ms(self.consumes, self.consume_micros),
            throughput_per_second: recent as f64 / WINDOW as f64,
        }
    }
}

fn average_ms(count: u64, micros: u64) -> f64 {
    if count == 0 { 0.0 } else { micros as f64 / count as f64 / 1000.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_counts_the_last_full_minute() {
        let m = Metrics::default();
        let t0 = Timestamp(1_000_000);
        for i in 0..120 {
            m.record_publish(1, Duration::from_millis(2), Timestamp(t0.0 + i * 500));
        }
        // 60 s of publishes at 2/s; at t0+60s the last 60 full seconds hold 118 of them.
        let p = m.queue(1, Timestamp(t0.0 + 60_000));
        assert_eq!(p.average_publish_ms, 2.0);
        assert!((p.throughput_per_second - 2.0).abs() < 0.05, "{p:?}");
        assert_eq!(m.queue(2, t0), QueuePerformance::default());
    }
}
