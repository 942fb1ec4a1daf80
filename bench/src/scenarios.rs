//! The benchmark scenarios, each run three times against a fresh server, with
//! the baseline measured in the same run; printed as a Markdown table.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{
    figures::{Figures, figure},
    load::{Stats, Step, check, closed_loop, open_loop},
    server::{Server, Usage, cpu_secs, mb, token},
};

/// Settings of one bench run.
struct Plan {
    repeats: usize,
    duration: Duration,
    open_loop_rate: u64,
    open_loop_secs: u64,
    /// Only what the side-by-side with the peers needs (`mq-bench peers`).
    peers_only: bool,
}

impl Plan {
    fn open_loop_label(&self) -> String {
        format!("open loop {} msg/s for {} s", self.open_loop_rate, self.open_loop_secs)
    }

    /// Messages in a queue before consume+ack: enough that the consumers never run dry,
    /// as a drained queue would cap the figure.
    fn prefill(&self) -> usize {
        60_000 * self.duration.as_secs() as usize
    }
}

/// `rounds` overrides the number of repetitions (3, or 1 with `quick`); `peers_only`
/// measures and prints only the side-by-side with RabbitMQ and NATS JetStream.
pub(crate) async fn run(quick: bool, rounds: Option<usize>, peers_only: bool) -> Result<(), String> {
    let (repeats, duration, open_loop_secs) = if quick { (1, 2, 5) } else { (3, 5, 60) };
    let plan = Plan {
        repeats: rounds.unwrap_or(if peers_only { 1 } else { repeats }),
        duration: Duration::from_secs(duration),
        open_loop_rate: 10_000,
        open_loop_secs,
        peers_only,
    };
    let mut figures = Figures::default();
    #[cfg(feature = "peers")]
    let mut peer_figures = Figures::default();
    for round in 1..=plan.repeats {
        eprintln!("round {round}/{}", plan.repeats);
        for (name, value) in baseline_round(&plan).await? {
            figures.put(name, value);
        }
        for (name, value) in service_round(&plan).await? {
            figures.put(name, value);
        }
        #[cfg(feature = "peers")]
        for (name, value) in crate::peers::round(&plan.peers()).await? {
            peer_figures.put(name, value);
        }
    }
    if !plan.peers_only {
        print_table(&figures);
    }
    #[cfg(feature = "peers")]
    crate::peers::print(&figures, &peer_figures, &plan.open_loop_label());
    #[cfg(not(feature = "peers"))]
    eprintln!("RabbitMQ and NATS JetStream: not measured; build mq-bench with `--features peers`");
    Ok(())
}

#[cfg(feature = "peers")]
impl Plan {
    fn peers(&self) -> crate::peers::PeerPlan {
        crate::peers::PeerPlan {
            duration: self.duration,
            open_loop_rate: self.open_loop_rate,
            open_loop_secs: self.open_loop_secs,
            // The peers consume several times faster than the service.
            prefill: 4 * self.prefill(),
        }
    }
}

/// The baseline handler: closed loops (with its CPU per request at 64 connections), the
/// same with a JWT checked on each request, and the open loop at the service's rate.
async fn baseline_round(plan: &Plan) -> Result<Vec<(String, f64)>, String> {
    let baseline = Server::baseline()?;
    let mut out = Vec::new();
    let connections: &[usize] = if plan.peers_only { &[64] } else { &[1, 4, 16, 64] };
    for &conns in connections {
        let cpu = baseline.cpu_secs();
        let stats = closed_loop(conns, plan.duration, baseline_step(&baseline.base, false)).await;
        check(&stats, "baseline")?;
        out.push((format!("baseline, {conns} connections"), stats.steps_per_sec()));
        if let (64, Some(before), Some(after)) = (conns, cpu, baseline.cpu_secs()) {
            out.push((
                "baseline, server CPU µs per request, 64 connections".to_owned(),
                per_step(after - before, &stats),
            ));
        }
    }
    let stats = closed_loop(64, plan.duration, baseline_step(&baseline.base, true)).await;
    check(&stats, "baseline with a JWT check")?;
    out.push(("baseline with a JWT check, 64 connections".to_owned(), stats.steps_per_sec()));
    let secs = Duration::from_secs(plan.open_loop_secs);
    let mut stats = open_loop(plan.open_loop_rate, secs, baseline_step(&baseline.base, false)).await;
    for (label, q) in QUANTILES {
        out.push((format!("baseline, {}: {label} ms", plan.open_loop_label()), stats.latency_ms(q)));
    }
    Ok(out)
}

/// The open loop's reported quantiles.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)];

/// Microseconds of CPU per step of a run.
fn per_step(cpu_secs: f64, stats: &Stats) -> f64 {
    1e6 * cpu_secs / stats.steps.max(1) as f64
}

/// Every service scenario on one fresh server.
async fn service_round(plan: &Plan) -> Result<Vec<(String, f64)>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    let base = server.base.clone();
    let mut out = Vec::new();
    tokio::time::sleep(Duration::from_millis(500)).await;
    out.push(("RSS idle, MB".to_owned(), mb(server.rss())));
    eprintln!("server pid {}", server.pid());
    for conns in [1, 16, 64] {
        eprintln!("publish, {conns} connections");
        let cpu = server.cpu_secs();
        let mut stats = closed_loop(conns, plan.duration, publish_step(&base, "bench.publish")).await;
        check(&stats, "publish")?;
        out.push((format!("publish 1 KB, {conns} connections"), stats.steps_per_sec()));
        out.push((format!("publish 1 KB, {conns} connections, p99 ms"), stats.latency_ms(0.99)));
        if let (Some(before), Some(after)) = (cpu, server.cpu_secs()) {
            out.push((format!("server CPU µs per publish, {conns} connections"), per_step(after - before, &stats)));
        }
    }
    eprintln!("batch publish");
    let stats = closed_loop(16, plan.duration, batch_step(&base, "bench.batch")).await;
    check(&stats, "batch publish")?;
    out.push(("batch publish 100 × 1 KB, 16 connections, msg/s".to_owned(), stats.messages_per_sec()));
    let variants: &[(u32, bool)] =
        if plan.peers_only { &[(10, false), (10, true)] } else { &[(1, false), (10, false), (10, true)] };
    for &(max, batch_ack) in variants {
        let topic = format!("bench.consume{max}{batch_ack}");
        let prefilled = plan.prefill();
        prefill(&base, &topic, prefilled).await?;
        eprintln!("consume+ack, max_messages {max}, batch acknowledge {batch_ack}");
        let stats = closed_loop(4, plan.duration, consume_ack_step(&base, &topic, max, batch_ack)).await;
        check(&stats, "consume+ack")?;
        if stats.messages as usize >= prefilled {
            return Err(format!("consume+ack drained all {prefilled} prefilled messages; prefill more"));
        }
        let acks = if batch_ack { "one acknowledge per batch" } else { "one acknowledge per message" };
        out.push((format!("consume+ack, max_messages {max}, {acks}, 4 consumers, msg/s"), stats.messages_per_sec()));
    }
    if !plan.peers_only {
        let history = if plan.repeats == 1 && plan.duration.as_secs() < 5 { 20_000 } else { 60_000 };
        eprintln!("message by id, after one group consumed {history} messages");
        let ids = Arc::new(consumed_history(&base, "bench.history", history).await?);
        let stats = closed_loop(16, plan.duration, message_step(&base, ids)).await;
        check(&stats, "message by id")?;
        out.push((format!("message by id, {history} consumed before, 16 connections"), stats.steps_per_sec()));
    }
    eprintln!("open loop");
    let secs = Duration::from_secs(plan.open_loop_secs);
    let mut stats = open_loop(plan.open_loop_rate, secs, publish_step(&base, "bench.open")).await;
    let label = plan.open_loop_label();
    for (quantile, q) in QUANTILES {
        out.push((format!("{label}: {quantile} ms"), stats.latency_ms(q)));
    }
    out.push((format!("{label}: error answers"), stats.errors as f64));
    out.push((format!("{label}: achieved msg/s"), stats.messages_per_sec()));
    out.push(("RSS after the open-loop run, MB".to_owned(), mb(server.rss())));
    Ok(out)
}

/// The message-by-id scenario alone, with the baseline at 16 connections: for comparing builds.
pub(crate) async fn lookup_alone(history: usize, secs: u64) -> Result<(), String> {
    let baseline = Server::baseline()?;
    let stats = closed_loop(16, Duration::from_secs(secs), baseline_step(&baseline.base, false)).await;
    println!("baseline, 16 connections: {:.0}/s", stats.steps_per_sec());
    drop(baseline);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    let ids = Arc::new(consumed_history(&server.base, "bench.history", history).await?);
    eprintln!("reading messages by id; server pid {}", server.pid());
    let mut stats = closed_loop(16, Duration::from_secs(secs), message_step(&server.base, ids)).await;
    check(&stats, "message by id")?;
    println!(
        "message by id, {history} consumed before, 16 connections: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        stats.steps_per_sec(),
        stats.latency_ms(0.5),
        stats.latency_ms(0.99)
    );
    Ok(())
}

/// Single publishes alone on a fresh server, `conns` connections for `secs`, with the
/// baseline in the same run: for comparing builds and for profiling.
pub(crate) async fn publish_alone(conns: usize, secs: u64) -> Result<(), String> {
    let duration = Duration::from_secs(secs);
    let baseline = Server::baseline()?;
    let cpu = baseline.cpu_secs();
    let stats = closed_loop(conns, duration, baseline_step(&baseline.base, true)).await;
    let cpu = baseline.cpu_secs().zip(cpu).map_or(0.0, |(a, b)| per_step(a - b, &stats));
    println!(
        "baseline with a JWT check, {conns} connections: {:.0}/s, {cpu:.1} µs of server CPU each",
        stats.steps_per_sec()
    );
    drop(baseline);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    eprintln!("publishing; server pid {}", server.pid());
    let cpu = server.cpu_secs();
    let mut stats = closed_loop(conns, duration, publish_step(&server.base, "bench.publish")).await;
    check(&stats, "publish")?;
    let cpu = server.cpu_secs().zip(cpu).map_or(0.0, |(a, b)| per_step(a - b, &stats));
    println!(
        "publish 1 KB, {conns} connections: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {cpu:.1} µs of server CPU each",
        stats.steps_per_sec(),
        stats.latency_ms(0.5),
        stats.latency_ms(0.99)
    );
    Ok(())
}

/// Consume plus acknowledge alone (4 consumers, up to 10 messages a call, one acknowledge per
/// message) from a prefilled queue: for A/B runs of the settle path.
pub(crate) async fn consume_alone(secs: u64, max: u32, batch_ack: bool, partitions: u32) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    let prefilled = 4_000 * max.max(5) as usize * secs as usize;
    create_topic(&server.base, "bench.consume", partitions).await?;
    prefill(&server.base, "bench.consume", prefilled).await?;
    eprintln!("consume+ack; server pid {}", server.pid());
    let (cpu, own, machine) = (server.cpu_secs(), cpu_secs("self"), busy_secs());
    let stats =
        closed_loop(4, Duration::from_secs(secs), consume_ack_step(&server.base, "bench.consume", max, batch_ack))
            .await;
    check(&stats, "consume+ack")?;
    if stats.messages as usize >= prefilled {
        return Err(format!("consume+ack drained all {prefilled} prefilled messages; prefill more"));
    }
    let per_message = |now: Option<f64>, then: Option<f64>| {
        now.zip(then).map_or(0.0, |(a, b)| (a - b) * 1e6 / stats.messages.max(1) as f64)
    };
    let acks = if batch_ack { "batch acknowledge" } else { "one acknowledge per message" };
    println!(
        "consume+ack, 4 consumers over {partitions} partitions, max_messages {max}, {acks}: {:.0} msg/s; CPU per message: \
         server {:.1} µs, load generator {:.1} µs, whole machine {:.1} µs",
        stats.messages_per_sec(),
        per_message(server.cpu_secs(), cpu),
        per_message(cpu_secs("self"), own),
        per_message(busy_secs(), machine),
    );
    Ok(())
}

/// CPU seconds the whole machine has spent busy (all cores, from `/proc/stat`).
fn busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: u64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    Some(busy as f64 / 100.0)
}

/// The open-loop scenario alone, against the baseline and then a fresh server: for
/// profiling. Prints the service's p99 as a ratio to the baseline's, and where the server's
/// time and writes went.
pub(crate) async fn open_loop_alone(rate: u64, secs: u64) -> Result<(), String> {
    let baseline = Server::baseline()?;
    let before = baseline.usage();
    let mut base = open_loop(rate, Duration::from_secs(secs), baseline_step(&baseline.base, false)).await;
    report(&format!("baseline, open loop {rate}/s for {secs} s"), &mut base, &baseline, &before);
    drop(baseline);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    let before = server.usage();
    let mut stats = open_loop(rate, Duration::from_secs(secs), publish_step(&server.base, "bench.open")).await;
    report(&format!("publish, open loop {rate}/s for {secs} s"), &mut stats, &server, &before);
    let after = server.usage();
    let written = after.written.zip(before.written).map_or(0, |(a, b)| a.saturating_sub(b));
    println!(
        "p99 over the baseline's: {:.2}x; p50 over the baseline's: {:.2}x; server threads: {}; \
         written to storage: {:.1} KB per message",
        stats.latency_ms(0.99) / base.latency_ms(0.99).max(0.001),
        stats.latency_ms(0.5) / base.latency_ms(0.5).max(0.001),
        before.threads_since(&after, stats.elapsed.as_secs_f64()),
        written as f64 / 1024.0 / stats.messages.max(1) as f64,
    );
    Ok(())
}

/// One line per open-loop run; `before` is what the server and the generator had used when it began.
fn report(label: &str, stats: &mut Stats, server: &Server, before: &Usage) {
    let after = server.usage();
    let secs = stats.elapsed.as_secs_f64();
    let share = |a: Option<f64>, b: Option<f64>| a.zip(b).map_or(0.0, |(a, b)| 100.0 * (a - b) / secs);
    println!(
        "{label}: achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, errors {}, \
         server CPU {:.0}% of a core, generator {:.0}%, RSS {:.1} MB",
        stats.messages_per_sec(),
        stats.latency_ms(0.5),
        stats.latency_ms(0.99),
        stats.latency_ms(0.999),
        stats.latency_ms(1.0),
        stats.errors,
        share(after.server_cpu, before.server_cpu),
        share(after.generator_cpu, before.generator_cpu),
        mb(server.rss())
    );
}

pub(crate) fn kilobyte() -> String {
    "x".repeat(1000)
}

/// A publish-shaped request to the baseline; `authorized` sends it to the route that checks a JWT.
pub(crate) fn baseline_step(base: &str, authorized: bool) -> Step {
    let url = format!("{base}/baseline{}", if authorized { "/authorized" } else { "" });
    let body = json!({"queue": "bench", "message": {"data": kilobyte()}}).to_string();
    let auth = format!("Bearer {}", token());
    Arc::new(move |client: reqwest::Client| Box::pin(expect(authorized_post(&client, &url, &auth, &body), 200, 1)))
}

pub(crate) fn publish_step(base: &str, queue: &str) -> Step {
    let url = format!("{base}/message-queue/publish");
    let body = json!({"queue": queue, "message": {"data": kilobyte()}, "persistent": true}).to_string();
    let auth = format!("Bearer {}", token());
    Arc::new(move |client: reqwest::Client| Box::pin(expect(authorized_post(&client, &url, &auth, &body), 200, 1)))
}

/// A JSON POST with a bearer token.
fn authorized_post(client: &reqwest::Client, url: &str, auth: &str, body: &str) -> reqwest::RequestBuilder {
    client.post(url).header("content-type", "application/json").header("authorization", auth).body(body.to_owned())
}

pub(crate) fn batch_step(base: &str, topic: &str) -> Step {
    let url = format!("{base}/api/v1/messages/batch");
    let item = json!({"topic": topic, "content": kilobyte()});
    let body = json!({"messages": vec![item; 100]}).to_string();
    let auth = format!("Bearer {}", token());
    Arc::new(move |client: reqwest::Client| {
        let req = authorized_post(&client, &url, &auth, &body);
        Box::pin(async move {
            let answer = send(req, 200).await?;
            let ok = answer["succeeded"].as_u64().unwrap_or(0);
            if ok == 100 { Ok(ok) } else { Err(format!("batch: {answer}")) }
        })
    })
}

/// Consumes up to `max` and acknowledges them: one request each, or all in one (`batch_ack`).
pub(crate) fn consume_ack_step(base: &str, topic: &str, max: u32, batch_ack: bool) -> Step {
    let (consume, ack) = (format!("{base}/api/v1/messages/consume"), format!("{base}/api/v1/messages/acknowledge"));
    let auth = format!("Bearer {}", token());
    let topic = topic.to_owned();
    Arc::new(move |client: reqwest::Client| {
        let (consume, ack, auth, topic) = (consume.clone(), ack.clone(), auth.clone(), topic.clone());
        Box::pin(async move {
            let body = json!({"topic": topic, "group_id": "bench", "consumer_id": "c", "max_messages": max});
            let got = send(client.post(&consume).header("authorization", &auth).json(&body), 200).await?;
            let messages = got["messages"].as_array().cloned().unwrap_or_default();
            let item = |m: &Value| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]});
            if batch_ack && !messages.is_empty() {
                let items: Vec<Value> = messages.iter().map(item).collect();
                let body = json!({"messages": items, "topic": topic, "success": true, "group_id": "bench"});
                let answer = send(client.post(&ack).header("authorization", &auth).json(&body), 200).await?;
                if answer["failed"] != 0 {
                    return Err(format!("batch ack: {answer}"));
                }
            } else {
                for m in &messages {
                    let mut body = item(m);
                    body["topic"] = json!(topic);
                    body["success"] = json!(true);
                    body["group_id"] = json!("bench");
                    send(client.post(&ack).header("authorization", &auth).json(&body), 200).await?;
                }
            }
            Ok(messages.len() as u64)
        })
    })
}

/// `GET /message-queue/messages/{id}`, going round the ids.
fn message_step(base: &str, ids: Arc<Vec<String>>) -> Step {
    let base = base.to_owned();
    let auth = format!("Bearer {}", token());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |client: reqwest::Client| {
        let i = next.fetch_add(7919, std::sync::atomic::Ordering::Relaxed) % ids.len();
        let req = client.get(format!("{base}/message-queue/messages/{}", ids[i])).header("authorization", &auth);
        Box::pin(expect(req, 200, 1))
    })
}

/// Publishes `n` messages and has one group consume and acknowledge them all; answers their ids.
async fn consumed_history(base: &str, topic: &str, n: usize) -> Result<Vec<String>, String> {
    prefill(base, topic, n).await?;
    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let body = json!({"topic": topic, "group_id": "history", "consumer_id": "c", "max_messages": 100});
        let got =
            send(client.post(format!("{base}/api/v1/messages/consume")).bearer_auth(token()).json(&body), 200).await?;
        let messages = got["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return Err(format!("{topic}: only {} of {n} messages consumed", ids.len()));
        }
        let items: Vec<Value> = messages
            .iter()
            .map(|m| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]}))
            .collect();
        let body = json!({"messages": items, "topic": topic, "success": true, "group_id": "history"});
        send(client.post(format!("{base}/api/v1/messages/acknowledge")).bearer_auth(token()).json(&body), 200).await?;
        ids.extend(messages.iter().filter_map(|m| m["message_id"].as_str().map(str::to_owned)));
    }
    Ok(ids)
}

/// Creates a topic of `partitions` partitions.
pub(crate) async fn create_topic(base: &str, topic: &str, partitions: u32) -> Result<(), String> {
    let body = json!({"name": topic, "partitions": partitions});
    let req = reqwest::Client::new().post(format!("{base}/api/v1/topics")).bearer_auth(token()).json(&body);
    send(req, 201).await.map(|_| ())
}

/// Publishes `n` messages to a topic in batches of 1000.
pub(crate) async fn prefill(base: &str, topic: &str, n: usize) -> Result<(), String> {
    let client = reqwest::Client::new();
    let item = json!({"topic": topic, "content": kilobyte()});
    for _ in 0..n / 1000 {
        let body = json!({"messages": vec![item.clone(); 1000]});
        let req = client.post(format!("{base}/api/v1/messages/batch")).bearer_auth(token()).json(&body);
        send(req, 200).await?;
    }
    Ok(())
}

async fn expect(req: reqwest::RequestBuilder, status: u16, messages: u64) -> Result<u64, String> {
    send(req, status).await.map(|_| messages)
}

async fn send(req: reqwest::RequestBuilder, status: u16) -> Result<Value, String> {
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let got = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if got != status {
        return Err(format!("status {got}: {text}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn print_table(figures: &Figures) {
    let baseline = |conns: &str| figures.median(&format!("baseline, {conns} connections"));
    println!("| scenario | median | spread | ratio to baseline |");
    println!("|---|---:|---:|---:|");
    for (name, f) in figures.iter() {
        let conns =
            name.split(", ").find_map(|p| p.strip_suffix(" connections").or_else(|| p.strip_suffix(" consumers")));
        let throughput = !name.ends_with(" ms")
            && !name.contains("MB")
            && !name.contains("errors")
            && !name.contains("CPU")
            && !name.starts_with("baseline");
        let reference = if name.starts_with("open loop") && name.ends_with(" ms") {
            figures.median(&format!("baseline, {name}"))
        } else if throughput {
            conns.and_then(baseline)
        } else {
            None
        };
        let ratio = reference.filter(|b| *b > 0.0).map_or(String::new(), |b| format!("{:.2}x", f.median() / b));
        println!("| {name} | {} | {} | {ratio} |", figure(f.median()), f.spread());
    }
}
