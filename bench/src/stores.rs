//! `mq-bench stores`: the same scenarios on the embedded store and on PostgreSQL, one and two
//! instances, as ratios to the baseline measured in the same round. Run under
//! `infra/postgres.sh`, which names the PostgreSQL server in `MQ_POSTGRES_URL`.

use std::time::Duration;

use crate::{
    figures::Figures,
    load::{Stats, Step, check, closed_loop, open_loop},
    pg::Scratch,
    scenarios::{baseline_step, batch_step, consume_ack_step, create_topic, prefill, publish_step},
    server::Server,
};

/// Partitions of the consumed topics: one per consumer, as a Kafka topic read by a group would have.
const CONSUMER_PARTITIONS: u32 = 4;

/// Load run before each measured closed loop and not counted (connections, prepared
/// statements, caches), as the open loop's warm-up.
const WARMUP: Duration = Duration::from_secs(1);

/// `workers` run `step` for [`WARMUP`], then for `duration` counted.
async fn warmed_loop(workers: usize, duration: Duration, step: Step) -> Stats {
    closed_loop(workers, WARMUP, step.clone()).await;
    closed_loop(workers, duration, step).await
}

/// Settings of one run (this harness's and `kafka.rs`'s).
pub(crate) struct Plan {
    pub(crate) rounds: usize,
    pub(crate) duration: Duration,
    pub(crate) open_loop_rate: u64,
    pub(crate) open_loop_secs: u64,
}

impl Plan {
    /// `--rounds N` (3), `--secs S` per closed loop (5), `--rate R` of the open loop (2000),
    /// `--open-loop-secs S` (20).
    pub(crate) fn parse(args: &[String]) -> Self {
        Self::parse_with(args, 5, 2_000, 20)
    }

    /// As [`Self::parse`], with other defaults for `--secs`, `--rate` and `--open-loop-secs`.
    pub(crate) fn parse_with(args: &[String], secs: u64, rate: u64, open_loop_secs: u64) -> Self {
        let value = |name: &str, default: u64| crate::flag(args, name, default);
        Self {
            rounds: value("--rounds", 3) as usize,
            duration: Duration::from_secs(value("--secs", secs)),
            open_loop_rate: value("--rate", rate),
            open_loop_secs: value("--open-loop-secs", open_loop_secs),
        }
    }
}

pub(crate) async fn run(plan: Plan) -> Result<(), String> {
    let mut figures = Figures::default();
    for round in 1..=plan.rounds {
        eprintln!("round {round}/{}", plan.rounds);
        let baseline = Server::baseline()?;
        for conns in [1, 4, 16, 64] {
            let stats = warmed_loop(conns, plan.duration, baseline_step(&baseline.base, false)).await;
            check(&stats, "baseline")?;
            figures.put(format!("baseline, {conns} connections"), stats.steps_per_sec());
        }
        drop(baseline);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        eprintln!("embedded");
        let embedded = Server::service(dir.path())?;
        one_instance(&plan, "embedded", &embedded.base, &mut figures).await?;
        drop(embedded);
        let db = Scratch::create("stores").await?;
        let env = [("MESSAGE_QUEUE_STORE", db.url.as_str())];
        let (dir_a, dir_b) =
            (tempfile::tempdir().map_err(|e| e.to_string())?, tempfile::tempdir().map_err(|e| e.to_string())?);
        eprintln!("PostgreSQL");
        let first = Server::service_with(dir_a.path(), &env)?;
        one_instance(&plan, "PostgreSQL", &first.base, &mut figures).await?;
        eprintln!("PostgreSQL, two instances");
        let second = Server::service_with(dir_b.path(), &env)?;
        two_instances(&plan, [&first.base, &second.base], &mut figures).await?;
        drop((first, second));
        db.drop_now().await?;
    }
    print(&figures, &plan);
    Ok(())
}

/// Publish at 1 and 64 connections, batch publish, consume+ack and the open loop, on one server.
async fn one_instance(plan: &Plan, store: &str, base: &str, figures: &mut Figures) -> Result<(), String> {
    for conns in [1, 64] {
        let mut stats = warmed_loop(conns, plan.duration, publish_step(base, "bench.publish")).await;
        check(&stats, "publish")?;
        figures.put(format!("{store}: publish 1 KB, {conns} connections"), stats.steps_per_sec());
        figures.put(format!("{store}: publish 1 KB, {conns} connections, p99 ms"), stats.latency_ms(0.99));
    }
    let stats = warmed_loop(16, plan.duration, batch_step(base, "bench.batch")).await;
    check(&stats, "batch publish")?;
    figures.put(format!("{store}: batch publish 100 × 1 KB, 16 connections, msg/s"), stats.messages_per_sec());
    for max in [10, 100] {
        let topic = format!("bench.consume{max}");
        create_topic(base, &topic, CONSUMER_PARTITIONS).await?;
        let prefilled = 4_000 * max as usize * (plan.duration + WARMUP).as_secs() as usize;
        prefill(base, &topic, prefilled).await?;
        let stats = warmed_loop(4, plan.duration, consume_ack_step(base, &topic, max, true)).await;
        check(&stats, "consume+ack")?;
        if stats.messages as usize >= prefilled {
            return Err(format!("consume+ack drained all {prefilled} prefilled messages; prefill more"));
        }
        figures.put(
            format!("{store}: consume+ack, max_messages {max}, batch acknowledge, 4 consumers, msg/s"),
            stats.messages_per_sec(),
        );
    }
    let mut stats =
        open_loop(plan.open_loop_rate, Duration::from_secs(plan.open_loop_secs), publish_step(base, "bench.open"))
            .await;
    for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
        figures.put(format!("{store}: {}: {label} ms", open_loop_label(plan)), stats.latency_ms(q));
    }
    figures.put(format!("{store}: {}: error answers", open_loop_label(plan)), stats.errors as f64);
    Ok(())
}

/// The same load spread over two servers on one database: publish at 64 connections (32 each),
/// consume+ack with 4 consumers (2 each).
async fn two_instances(plan: &Plan, bases: [&str; 2], figures: &mut Figures) -> Result<(), String> {
    let store = "PostgreSQL, two instances";
    let (a, b) = tokio::join!(
        warmed_loop(32, plan.duration, publish_step(bases[0], "bench.publish2")),
        warmed_loop(32, plan.duration, publish_step(bases[1], "bench.publish2")),
    );
    figures.put(format!("{store}: publish 1 KB, 64 connections"), sum(&[a, b], "publish")?);
    let topic = "bench.consume2";
    create_topic(bases[0], topic, CONSUMER_PARTITIONS).await?;
    let prefilled = 40_000 * (plan.duration + WARMUP).as_secs() as usize;
    prefill(bases[0], topic, prefilled).await?;
    let (a, b) = tokio::join!(
        warmed_loop(2, plan.duration, consume_ack_step(bases[0], topic, 10, true)),
        warmed_loop(2, plan.duration, consume_ack_step(bases[1], topic, 10, true)),
    );
    if a.messages + b.messages >= prefilled as u64 {
        return Err(format!("consume+ack drained all {prefilled} prefilled messages; prefill more"));
    }
    let rate = [a, b].iter().map(Stats::messages_per_sec).sum();
    figures.put(format!("{store}: consume+ack, max_messages 10, batch acknowledge, 4 consumers, msg/s"), rate);
    Ok(())
}

/// Steps per second of runs side by side, each checked.
fn sum(runs: &[Stats], what: &str) -> Result<f64, String> {
    runs.iter().try_for_each(|s| check(s, what))?;
    Ok(runs.iter().map(Stats::steps_per_sec).sum())
}

fn open_loop_label(plan: &Plan) -> String {
    format!("open loop {} msg/s for {} s", plan.open_loop_rate, plan.open_loop_secs)
}

/// A Markdown table; throughput as a ratio to the baseline at the same connection count.
fn print(figures: &Figures, plan: &Plan) {
    figures.print_with_ratios(plan.rounds, plan.duration.as_secs(), |name| !name.starts_with("baseline"));
}
