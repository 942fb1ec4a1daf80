//! `mq-bench kafka`: the service with its log on Kafka beside the same messages produced and
//! read straight through `rdkafka` in the same run, so the gateway's own cost shows; throughput
//! also as ratios to the baseline. Run under `infra/kafka.sh`, which names the broker in
//! `KAFKA_BROKERS`.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use shared::{
    domain::Timestamp,
    kafka::{
        headers,
        rdkafka::{
            ClientConfig, Offset, TopicPartitionList,
            consumer::{BaseConsumer, Consumer},
            producer::{FutureProducer, FutureRecord},
        },
    },
    ports::{Content, Record},
};

use crate::{
    figures::Figures,
    load::{Stats, Step, check, closed_loop, closed_loop_on, open_loop, open_loop_on},
    scenarios::{baseline_step, batch_step, consume_ack_step, create_topic, kilobyte, prefill, publish_step},
    server::{Server, mb},
    stores::Plan,
};

/// `--rounds N` (3), `--secs S` per closed loop (3), `--rate R` of the open loops (5000),
/// `--open-loop-secs S` (10).
pub(crate) fn plan(args: &[String]) -> Plan {
    Plan::parse_with(args, 3, 5_000, 10)
}

/// The producer settings the service uses (`shared::kafka`), for the direct figures.
fn producer(brokers: &str) -> Result<Arc<FutureProducer>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set("queue.buffering.max.kbytes", "16384")
        .create()
        .map(Arc::new)
        .map_err(|e| format!("a producer: {e}"))
}

/// A record as the service writes a published 1 KB message: its content, and its fields in the
/// service's own headers (`shared::kafka::headers`), so both sides send the same bytes.
fn record() -> Record {
    Record {
        key: None,
        routing_key: None,
        content: Content::Json(serde_json::json!({"data": kilobyte()}).to_string()),
        headers: serde_json::Map::new(),
        priority: None,
        ttl_ms: 86_400_000,
        persistent: true,
        published_at: Timestamp::now(),
    }
}

/// Sends `n` 1 KB records to `topic` and waits for every delivery report.
fn produce_step(topic: &str, n: usize) -> Step<Arc<FutureProducer>> {
    let topic = topic.to_owned();
    Arc::new(move |producer: Arc<FutureProducer>| {
        let topic = topic.clone();
        Box::pin(async move {
            let record = record();
            let payload = record.content.as_text();
            let sends = (0..n).map(|_| {
                let out = FutureRecord::<(), _>::to(&topic)
                    .payload(payload)
                    .headers(headers(&record))
                    .timestamp(record.published_at.0);
                producer.send(out, Duration::from_secs(10))
            });
            for answer in join_all(sends).await {
                answer.map_err(|(e, _)| e.to_string())?;
            }
            Ok(n as u64)
        })
    })
}

pub(crate) async fn run(plan: Plan) -> Result<(), String> {
    let brokers = std::env::var("KAFKA_BROKERS").map_err(|_| "run under infra/kafka.sh (KAFKA_BROKERS)")?;
    let mut figures = Figures::default();
    for round in 1..=plan.rounds {
        eprintln!("round {round}/{}", plan.rounds);
        let baseline = Server::baseline()?;
        for conns in [1, 4, 16, 64] {
            let stats = closed_loop(conns, plan.duration, baseline_step(&baseline.base, false)).await;
            check(&stats, "baseline")?;
            figures.put(format!("baseline, {conns} connections"), stats.steps_per_sec());
        }
        drop(baseline);
        let prefix = format!("bench-{}-{round}-", std::process::id());
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let env = [("KAFKA_BROKERS", brokers.as_str()), ("KAFKA_TOPIC_PREFIX", prefix.as_str())];
        let server = Server::service_with(dir.path(), &env)?;
        eprintln!("the service");
        through_the_service(&plan, &server.base, &mut figures).await?;
        eprintln!("rdkafka");
        // The direct figures write to topics the service made, so both run on the same kind of topic.
        for topic in ["direct.publish", "direct.batch", "direct.open"] {
            create_topic(&server.base, topic, 1).await?;
        }
        let producer = producer(&brokers)?;
        direct(&plan, &producer, &brokers, &prefix, &mut figures).await?;
        // The open loops last and side by side, first one then the other by round: the broker's
        // latency drifts as its storage grows.
        eprintln!("open loops");
        let duration = Duration::from_secs(plan.open_loop_secs);
        for service_first in [round % 2 == 1, round % 2 == 0] {
            if service_first {
                let stats = open_loop(plan.open_loop_rate, duration, publish_step(&server.base, "bench.open")).await;
                put_open_loop(&plan, "service", stats, &mut figures);
            } else {
                let step = produce_step(&format!("{prefix}direct.open"), 1);
                let stats = open_loop_on(plan.open_loop_rate, duration, producer.clone(), step).await;
                put_open_loop(&plan, "rdkafka", stats, &mut figures);
            }
        }
        figures.put("the service: resident memory after the runs, MB".into(), mb(server.rss()));
        drop(server);
    }
    print(&figures, &plan);
    Ok(())
}

async fn through_the_service(plan: &Plan, base: &str, figures: &mut Figures) -> Result<(), String> {
    for topic in ["bench.publish", "bench.batch", "bench.open"] {
        create_topic(base, topic, 1).await?;
    }
    for conns in [1, 64] {
        let mut stats = closed_loop(conns, plan.duration, publish_step(base, "bench.publish")).await;
        check(&stats, "publish")?;
        figures.put(format!("service: publish 1 KB, {conns} connections"), stats.steps_per_sec());
        figures.put(format!("service: publish 1 KB, {conns} connections, p99 ms"), stats.latency_ms(0.99));
    }
    let stats = closed_loop(16, plan.duration, batch_step(base, "bench.batch")).await;
    check(&stats, "batch publish")?;
    figures.put("service: batch publish 100 × 1 KB, 16 connections, msg/s".into(), stats.messages_per_sec());
    let topic = "bench.consume";
    create_topic(base, topic, 4).await?;
    // tansu reads a fetch's window over the whole rest of the partition: a backlog kept modest.
    let prefilled = 4_000 * plan.duration.as_secs() as usize;
    prefill(base, topic, prefilled).await?;
    let stats = closed_loop(4, plan.duration, consume_ack_step(base, topic, 100, true)).await;
    check(&stats, "consume+ack")?;
    if stats.messages as usize >= prefilled {
        return Err(format!("consume+ack drained all {prefilled} prefilled messages; prefill more"));
    }
    figures.put("service: consume+ack, max_messages 100, batch acknowledge, 4 consumers, msg/s".into(), {
        stats.messages_per_sec()
    });
    Ok(())
}

/// The same loads straight through rdkafka: single records awaited one at a time per worker,
/// batches of 100, and a read of the service's prefilled topic.
async fn direct(
    plan: &Plan,
    producer: &Arc<FutureProducer>,
    brokers: &str,
    prefix: &str,
    figures: &mut Figures,
) -> Result<(), String> {
    for conns in [1, 64] {
        let step = produce_step(&format!("{prefix}direct.publish"), 1);
        let mut stats = closed_loop_on(conns, plan.duration, |_| producer.clone(), step).await;
        check(&stats, "direct produce")?;
        figures.put(format!("rdkafka: produce 1 KB, {conns} at once"), stats.steps_per_sec());
        figures.put(format!("rdkafka: produce 1 KB, {conns} at once, p99 ms"), stats.latency_ms(0.99));
    }
    let step = produce_step(&format!("{prefix}direct.batch"), 100);
    let stats = closed_loop_on(16, plan.duration, |_| producer.clone(), step).await;
    check(&stats, "direct batch")?;
    figures.put("rdkafka: produce 100 × 1 KB, 16 at once, msg/s".into(), stats.messages_per_sec());
    let topic = format!("{prefix}bench.consume");
    let brokers = brokers.to_owned();
    let read = tokio::task::spawn_blocking(move || read_all(&brokers, &topic)).await.map_err(|e| e.to_string())?;
    figures.put("rdkafka: read the consumed topic (4 partitions), msg/s".into(), read?);
    Ok(())
}

/// Reads every partition of `topic` from the start with one assign-only consumer; answers msg/s.
fn read_all(brokers: &str, topic: &str) -> Result<f64, String> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "mq-bench-direct")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..4 {
        assignment.add_partition_offset(topic, p, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    reader.assign(&assignment).map_err(|e| e.to_string())?;
    let (start, mut read, mut ended) = (std::time::Instant::now(), 0u64, 0);
    while ended < 4 {
        match reader.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => read += u64::from(m.payload_len() > 0),
            Some(Err(shared::kafka::rdkafka::error::KafkaError::PartitionEOF(_))) => ended += 1,
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            None => return Err(format!("reading {topic}: nothing for 10 s")),
        }
    }
    Ok(read as f64 / start.elapsed().as_secs_f64())
}

fn put_open_loop(plan: &Plan, who: &str, mut stats: Stats, figures: &mut Figures) {
    let label = format!("open loop {} msg/s for {} s", plan.open_loop_rate, plan.open_loop_secs);
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        figures.put(format!("{who}: {label}: {name} ms"), stats.latency_ms(q));
    }
    figures.put(format!("{who}: {label}: error answers"), stats.errors as f64);
}

/// A Markdown table; throughput as a ratio to the baseline at the same connection count, and
/// the service's batch publish and open-loop p99 beside rdkafka's.
fn print(figures: &Figures, plan: &Plan) {
    figures.print_with_ratios(plan.rounds, plan.duration.as_secs(), |name| name.starts_with("service"));
    let median = |name: &str| figures.median(name).unwrap_or(f64::NAN);
    let batch = median("service: batch publish 100 × 1 KB, 16 connections, msg/s")
        / median("rdkafka: produce 100 × 1 KB, 16 at once, msg/s");
    println!("\nbatch publish through the service: {batch:.2}x rdkafka's");
    let label = format!("open loop {} msg/s for {} s: p99 ms", plan.open_loop_rate, plan.open_loop_secs);
    let added = median(&format!("service: {label}")) - median(&format!("rdkafka: {label}"));
    println!("open-loop p99 added by the service: {added:.2} ms");
}
