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

/// One worker step on connection `C` (an HTTP client, or a peer broker's channel):
/// sends what it must and answers how many messages it moved.
pub(crate) type Step<C = reqwest::Client> =
    Arc<dyn Fn(C) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

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

/// An error unless at most 1% of a run's steps failed.
pub(crate) fn check(stats: &Stats, what: &str) -> Result<(), String> {
    match &stats.first_error {
        Some(e) if stats.errors * 100 > stats.steps.max(1) => {
            Err(format!("{what}: {} errors, first: {e}", stats.errors))
        }
        _ => Ok(()),
    }
}

/// A client that keeps one connection: one per closed-loop worker.
pub(crate) fn one_connection() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(30)).build().expect("client")
}

/// `workers` workers run `step` back to back for `duration`, each on a connection of its own.
pub(crate) async fn closed_loop(workers: usize, duration: Duration, step: Step) -> Stats {
    closed_loop_on(workers, duration, |_| one_connection(), step).await
}

/// `workers` workers run `step` back to back for `duration`; worker `i` on `connection(i)`.
pub(crate) async fn closed_loop_on<C: Clone + Send + 'static>(
    workers: usize,
    duration: Duration,
    connection: impl Fn(usize) -> C,
    step: Step<C>,
) -> Stats {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let (step, client) = (step.clone(), connection(i));
            tokio::spawn(async move {
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
        .pool_max_idle_per_host(IN_FLIGHT)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    open_loop_on(rate, duration, client, step).await
}

/// The most requests the open loop has outstanding at once.
const IN_FLIGHT: usize = 512;

/// [`open_loop`] with every step on `connection` (a pooled client or a shared channel).
pub(crate) async fn open_loop_on<C: Clone + Send + 'static>(
    rate: u64,
    duration: Duration,
    connection: C,
    step: Step<C>,
) -> Stats {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
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
                let (step, connection, stats, in_flight) =
                    (step.clone(), connection.clone(), stats.clone(), in_flight.clone());
                tasks.push(runtime.spawn(async move {
                    let permit = in_flight.acquire_owned().await.expect("semaphore");
                    let outcome = step(connection).await;
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
