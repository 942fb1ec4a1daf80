//! The same workloads against the brokers a user would pick instead: RabbitMQ
//! ([`rabbit`]) and NATS JetStream ([`nats`]), over their own binary protocols on
//! long-lived connections. A peer whose server does not answer is skipped with one line.

mod nats;
mod process;
mod rabbit;
mod table;

use std::time::Duration;

pub(crate) use table::print;

use crate::{
    load::{Stats, check},
    server::mb,
};

/// Settings of one peer round (the service's own plan, in the peers' terms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerPlan {
    pub(crate) duration: Duration,
    pub(crate) open_loop_rate: u64,
    pub(crate) open_loop_secs: u64,
    /// Messages in the queue before consume+ack starts.
    pub(crate) prefill: usize,
}

/// What each peer runs; every call makes its own queue or stream and deletes it after.
trait Workloads {
    /// Single persistent publishes, each awaiting its confirmation, `in_flight` at once.
    async fn publish(&self, in_flight: usize, duration: Duration) -> Result<Stats, String>;
    /// `size` publishes sent back to back before awaiting their confirmations.
    async fn batch(&self, in_flight: usize, size: usize, duration: Duration) -> Result<Stats, String>;
    /// `consumers` consumers of a prefilled queue, acknowledging each message.
    async fn consume_ack(&self, consumers: usize, prefill: usize, duration: Duration) -> Result<Stats, String>;
    /// Publishes at a fixed rate, each timed from when it was due.
    async fn open_loop(&self, plan: &PeerPlan) -> Result<Stats, String>;
}

/// One peer round: every workload on each peer that answers; figures named `"{peer}: {workload}"`.
pub(crate) async fn round(plan: &PeerPlan) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    match rabbit::connect().await {
        Ok(peer) => measure(&peer, rabbit::NAME, process::listening(&rabbit::url()), plan, &mut out).await?,
        Err(e) => eprintln!("{}: not running ({e}); skipped", rabbit::NAME),
    }
    match nats::connect().await {
        Ok(peer) => measure(&peer, nats::NAME, process::listening(&nats::url()), plan, &mut out).await?,
        Err(e) => eprintln!("{}: not running ({e}); skipped", nats::NAME),
    }
    Ok(out)
}

async fn measure(
    peer: &impl Workloads,
    name: &str,
    pid: Option<u32>,
    plan: &PeerPlan,
    out: &mut Vec<(String, f64)>,
) -> Result<(), String> {
    let mut put = |label: &str, value: f64| out.push((format!("{name}: {label}"), value));
    let rss = || mb(pid.and_then(process::rss));
    let cpu = || pid.and_then(|p| crate::server::cpu_secs(&p.to_string()));
    put("RSS before, MB", rss());
    for in_flight in [1, 16, 64] {
        eprintln!("{name}: publish, {in_flight} in flight");
        let before = cpu();
        let mut stats = peer.publish(in_flight, plan.duration).await?;
        check(&stats, name)?;
        put(&format!("publish 1 KB, {in_flight} in flight"), stats.steps_per_sec());
        put(&format!("publish 1 KB, {in_flight} in flight, p99 ms"), stats.latency_ms(0.99));
        if let (Some(b), Some(a)) = (before, cpu()) {
            put(&format!("server CPU µs per publish, {in_flight} in flight"), 1e6 * (a - b) / stats.steps as f64);
        }
    }
    eprintln!("{name}: batches of 100");
    let stats = peer.batch(16, 100, plan.duration).await?;
    check(&stats, name)?;
    put("batch 100 × 1 KB, 16 in flight, msg/s", stats.messages_per_sec());
    eprintln!("{name}: consume+ack");
    let stats = peer.consume_ack(4, plan.prefill, plan.duration).await?;
    check(&stats, name)?;
    if stats.messages as usize >= plan.prefill {
        return Err(format!("{name}: consume+ack drained all {} prefilled messages; prefill more", plan.prefill));
    }
    put("consume+ack, 4 consumers, msg/s", stats.messages_per_sec());
    eprintln!("{name}: open loop");
    let mut stats = peer.open_loop(plan).await?;
    for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        put(&format!("open loop: {label} ms"), stats.latency_ms(q));
    }
    put("open loop: errors", stats.errors as f64);
    put("RSS after, MB", rss());
    Ok(())
}

/// 1,000 bytes, as the service's 1 KB messages carry.
fn payload() -> Vec<u8> {
    vec![b'x'; 1000]
}

/// A queue or stream name of this run and scenario, so runs never share one.
fn scenario_name(scenario: &str) -> String {
    format!("mq-bench-{}-{scenario}", std::process::id())
}
