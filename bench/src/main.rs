//! `mq-bench`: benchmarks of the release server against a minimal axum
//! baseline measured in the same run, and the crash-recovery fault check.
//!
//! ```text
//! mq-bench bench [--quick] [--rounds N]    figures for BENCHMARKS.md (with the peers when built with them)
//! mq-bench peers [--quick] [--rounds N]    the side-by-side with RabbitMQ and NATS JetStream (feature `peers`)
//! mq-bench fault-check        publish, SIGKILL, restart, prove the ledger
//! mq-bench open-loop RATE SECS publish at a fixed rate on a fresh server; latency figures
//! mq-bench publish CONNS SECS single publishes on a fresh server; with the baseline
//! mq-bench consume SECS [--max N] [--batch] [--partitions N]
//!                             consume+ack alone on a fresh server (MQ_BENCH_STORE); CPU per message
//! mq-bench lookup N SECS     messages read by id after one group consumed N; with the baseline
//! mq-bench push [--messages N] [--partitions N] [--retry-delay MS] [--ordered]
//!                             10,000 messages to 3 subscriptions, a fifth of first attempts failing
//! mq-bench stores [--rounds N] [--secs S] [--open-loop-secs S]
//!                             embedded against PostgreSQL, one and two instances (under infra/postgres.sh)
//! mq-bench soak [--minutes M] [--rate R] [--window S]
//!                             steady publish-consume-ack on PostgreSQL, an idle transaction in the middle
//! mq-bench kafka [--rounds N] [--secs S] [--rate R] [--open-loop-secs S]
//!                             the log on Kafka beside rdkafka straight (feature `kafka`, under infra/kafka.sh)
//! mq-bench baseline-server    the baseline: a fixed JSON answer (started by `bench`)
//! ```

mod baseline;
mod fault;
mod figures;
#[cfg(feature = "kafka")]
mod kafka;
mod load;
#[cfg(feature = "peers")]
mod peers;
mod pg;
mod push;
mod scenarios;
mod server;
mod soak;
mod stores;

use std::process::ExitCode;

/// The number after `flag` in the arguments (`--rounds 3`), or `default`.
pub(crate) fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a Tokio runtime");
    let number = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let result = match args.first().map(String::as_str) {
        Some("baseline-server") => runtime.block_on(baseline::serve()),
        Some(which @ ("bench" | "peers")) => {
            let rounds = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok());
            runtime.block_on(scenarios::run(args.iter().any(|a| a == "--quick"), rounds, which == "peers"))
        }
        Some("fault-check") => runtime.block_on(fault::run()),
        Some("publish") => runtime.block_on(scenarios::publish_alone(number(1, 64) as usize, number(2, 10))),
        Some("consume") => runtime.block_on(scenarios::consume_alone(
            number(1, 10),
            flag(&args, "--max", 10) as u32,
            args.iter().any(|a| a == "--batch"),
            flag(&args, "--partitions", 4) as u32,
        )),
        Some("lookup") => runtime.block_on(scenarios::lookup_alone(number(1, 60_000) as usize, number(2, 5))),
        Some("push") => runtime.block_on(push::run(push::Plan::parse(&args))),
        Some("stores") => runtime.block_on(stores::run(stores::Plan::parse(&args))),
        Some("soak") => runtime.block_on(soak::run(soak::Plan::parse(&args))),
        #[cfg(feature = "kafka")]
        Some("kafka") => runtime.block_on(kafka::run(kafka::plan(&args))),
        Some("open-loop") => runtime.block_on(scenarios::open_loop_alone(number(1, 10_000), number(2, 10))),
        _ => Err(
            "usage: mq-bench bench|peers [--quick] [--rounds N] | open-loop RATE SECS | publish CONNS SECS | consume SECS [--max N] [--batch] [--partitions N] | lookup N SECS | push [--ordered] ... | stores ... | soak ... | kafka ... | fault-check \
             | baseline-server"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
