//! Load generators. Closed loop: N workers, one connection each, back to back.
//! Open loop: requests sent on a fixed schedule, latency measured from the
//! scheduled send time, so a slow server cannot hide its delay (no coordinated omission).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

/// One worker step: sends what it must and answers how many messages it moved.
pub(crate) type Step =
    Arc<dyn Fn(reqwest::Client) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) steps: u64,
    pub(crate) messages: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    latencies_us: Vec<u64>,
    pub(crate) first_error: Option<String>,
}

impl Stats {
    pub(crate) fn steps_per_sec(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..1), in milliseconds.
    pub(crate) fn latency_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn merge(&mut self, other: Stats) {
        self.steps += other.steps;
        self.messages += other.messages;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn record(&mut self, outcome: Result<u64, String>, took: Duration) {
        match outcome {
            Ok(n) => {
                self.steps += 1;
                self.messages += n;
                self.latencies_us.push(took.as_micros() as u64);
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// A client that keeps one connection: one per closed-loop worker.
pub(crate) fn one_connection() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(30)).build().expect("client")
}

/// `workers` workers run `step` back to back for `duration`.
pub(crate) async fn closed_loop(workers: usize, duration: Duration, step: Step) -> Stats {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let step = step.clone();
            tokio::spawn(async move {
                let client = one_connection();
                let mut stats = Stats::default();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let outcome = step(client.clone()).await;
                    stats.record(outcome, began.elapsed());
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in tasks {
        total.merge(t.await.unwrap_or_default());
    }
    total.elapsed = start.elapsed();
    total
}

/// The open loop's first stretch, at the same rate but not counted (connections, caches).
const WARMUP: Duration = Duration::from_secs(1);

/// Sends `rate` steps per second for `duration`, each timed from when it was due,
/// after a [`WARMUP`] at the same rate.
/// A thread of its own paces the sends: the runtime's timer has a resolution of a
/// millisecond, which would add up to a millisecond of the generator's own delay.
pub(crate) async fn open_loop(rate: u64, duration: Duration, step: Step) -> Stats {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let in_flight = Arc::new(Semaphore::new(512));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let runtime = tokio::runtime::Handle::current();
    let warmup = rate * WARMUP.as_secs();
    let start = Instant::now() + Duration::from_millis(100);
    let total = warmup + rate * duration.as_secs();
    let pacer = {
        let stats = stats.clone();
        std::thread::spawn(move || {
            let mut tasks = Vec::with_capacity(total as usize);
            for i in 0..total {
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (step, client, stats, in_flight) = (step.clone(), client.clone(), stats.clone(), in_flight.clone());
                tasks.push(runtime.spawn(async move {
                    let permit = in_flight.acquire_owned().await.expect("semaphore");
                    let outcome = step(client).await;
                    let took = due.elapsed();
                    if i >= warmup {
                        stats.lock().expect("stats").record(outcome, took);
                    }
                    drop(permit);
                }));
            }
            tasks
        })
    };
    let tasks = tokio::task::spawn_blocking(move || pacer.join().unwrap_or_default()).await.unwrap_or_default();
    for t in tasks {
        let _ = t.await;
    }
    let mut out = std::mem::take(&mut *stats.lock().expect("stats"));
    out.elapsed = (start + WARMUP).elapsed();
    out
}
