//! The benchmark scenarios, each run three times against a fresh server, with
//! the baseline measured in the same run; printed as a Markdown table.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{
    load::{Stats, Step, closed_loop, open_loop},
    server::{Server, cpu_secs, token},
};

/// Settings of one bench run.
struct Plan {
    repeats: usize,
    duration: Duration,
    open_loop_rate: u64,
    open_loop_secs: u64,
}

/// One figure per repetition, reported as median and spread.
#[derive(Default)]
struct Figure {
    values: Vec<f64>,
}

impl Figure {
    fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    fn spread(&self) -> String {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.values.iter().copied().fold(0.0, f64::max);
        format!("{}–{}", figure(min), figure(max))
    }
}

/// `rounds` overrides the number of repetitions (3, or 1 with `quick`).
pub(crate) async fn run(quick: bool, rounds: Option<usize>) -> Result<(), String> {
    let mut plan = if quick {
        Plan { repeats: 1, duration: Duration::from_secs(2), open_loop_rate: 10_000, open_loop_secs: 5 }
    } else {
        Plan { repeats: 3, duration: Duration::from_secs(5), open_loop_rate: 10_000, open_loop_secs: 60 }
    };
    plan.repeats = rounds.unwrap_or(plan.repeats);
    let mut figures: Vec<(String, Figure)> = Vec::new();
    let mut put = |name: String, value: f64| match figures.iter_mut().find(|(n, _)| *n == name) {
        Some((_, f)) => f.values.push(value),
        None => figures.push((name, Figure { values: vec![value] })),
    };
    for round in 1..=plan.repeats {
        eprintln!("round {round}/{}", plan.repeats);
        let baseline = Server::baseline()?;
        for conns in [1, 4, 16, 64] {
            let stats = closed_loop(conns, plan.duration, baseline_step(&baseline.base)).await;
            check(&stats, "baseline")?;
            put(format!("baseline, {conns} connections"), stats.steps_per_sec());
        }
        drop(baseline);
        for (name, value) in service_round(&plan).await? {
            put(name, value);
        }
    }
    print_table(&figures);
    Ok(())
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
        let mut stats = closed_loop(conns, plan.duration, publish_step(&base, "bench.publish")).await;
        check(&stats, "publish")?;
        out.push((format!("publish 1 KB, {conns} connections"), stats.steps_per_sec()));
        out.push((format!("publish 1 KB, {conns} connections, p99 ms"), stats.latency_ms(0.99)));
    }
    eprintln!("batch publish");
    let stats = closed_loop(16, plan.duration, batch_step(&base, "bench.batch")).await;
    check(&stats, "batch publish")?;
    out.push(("batch publish 100 × 1 KB, 16 connections, msg/s".to_owned(), stats.messages_per_sec()));
    for (max, batch_ack) in [(1u32, false), (10, false), (10, true)] {
        let topic = format!("bench.consume{max}{batch_ack}");
        // Enough that the consumers never run dry: a drained queue would cap the figure.
        let prefilled = 60_000 * plan.duration.as_secs() as usize;
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
    let history = if plan.repeats == 1 && plan.duration.as_secs() < 5 { 20_000 } else { 60_000 };
    eprintln!("message by id, after one group consumed {history} messages");
    let ids = Arc::new(consumed_history(&base, "bench.history", history).await?);
    let stats = closed_loop(16, plan.duration, message_step(&base, ids)).await;
    check(&stats, "message by id")?;
    out.push((format!("message by id, {history} consumed before, 16 connections"), stats.steps_per_sec()));
    eprintln!("open loop");
    let mut stats =
        open_loop(plan.open_loop_rate, Duration::from_secs(plan.open_loop_secs), publish_step(&base, "bench.open"))
            .await;
    let label = format!("open loop {} msg/s for {} s", plan.open_loop_rate, plan.open_loop_secs);
    out.push((format!("{label}: p50 ms"), stats.latency_ms(0.50)));
    out.push((format!("{label}: p99 ms"), stats.latency_ms(0.99)));
    out.push((format!("{label}: p99.9 ms"), stats.latency_ms(0.999)));
    out.push((format!("{label}: error answers"), stats.errors as f64));
    out.push((format!("{label}: achieved msg/s"), stats.messages_per_sec()));
    out.push(("RSS after the open-loop run, MB".to_owned(), mb(server.rss())));
    Ok(out)
}

/// The message-by-id scenario alone, with the baseline at 16 connections: for comparing builds.
pub(crate) async fn lookup_alone(history: usize, secs: u64) -> Result<(), String> {
    let baseline = Server::baseline()?;
    let stats = closed_loop(16, Duration::from_secs(secs), baseline_step(&baseline.base)).await;
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

/// The open-loop scenario alone, against the baseline and then a fresh server: for profiling.
pub(crate) async fn open_loop_alone(rate: u64, secs: u64) -> Result<(), String> {
    let baseline = Server::baseline()?;
    let cpu = baseline.cpu_secs().zip(cpu_secs("self"));
    let stats = open_loop(rate, Duration::from_secs(secs), baseline_step(&baseline.base)).await;
    report(&format!("baseline, open loop {rate}/s for {secs} s"), stats, &baseline, cpu);
    drop(baseline);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service(dir.path())?;
    let cpu = server.cpu_secs().zip(cpu_secs("self"));
    let stats = open_loop(rate, Duration::from_secs(secs), publish_step(&server.base, "bench.open")).await;
    report(&format!("publish, open loop {rate}/s for {secs} s"), stats, &server, cpu);
    Ok(())
}

/// One line per open-loop run; `cpu_before` is the CPU time of the server and of this
/// process (the generator) when the run began.
fn report(label: &str, mut stats: Stats, server: &Server, cpu_before: Option<(f64, f64)>) {
    let after = server.cpu_secs().zip(cpu_secs("self"));
    let (cpu, own) = after.zip(cpu_before).map_or((0.0, 0.0), |((s1, g1), (s0, g0))| (s1 - s0, g1 - g0));
    println!(
        "{label}: achieved {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, errors {}, \
         server CPU {:.0}% of a core, generator {:.0}%, RSS {:.1} MB",
        stats.messages_per_sec(),
        stats.latency_ms(0.5),
        stats.latency_ms(0.99),
        stats.latency_ms(0.999),
        stats.latency_ms(1.0),
        stats.errors,
        100.0 * cpu / stats.elapsed.as_secs_f64(),
        100.0 * own / stats.elapsed.as_secs_f64(),
        mb(server.rss())
    );
}

fn check(stats: &Stats, what: &str) -> Result<(), String> {
    match &stats.first_error {
        Some(e) if stats.errors * 100 > stats.steps.max(1) => {
            Err(format!("{what}: {} errors, first: {e}", stats.errors))
        }
        _ => Ok(()),
    }
}

fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| b as f64 / 1_048_576.0)
}

fn kilobyte() -> String {
    "x".repeat(1000)
}

fn baseline_step(base: &str) -> Step {
    let url = format!("{base}/baseline");
    let body = json!({"queue": "bench", "message": {"data": kilobyte()}}).to_string();
    Arc::new(move |client: reqwest::Client| {
        let (url, body) = (url.clone(), body.clone());
        Box::pin(
            async move { expect(client.post(url).header("content-type", "application/json").body(body), 200, 1).await },
        )
    })
}

fn publish_step(base: &str, queue: &str) -> Step {
    let url = format!("{base}/message-queue/publish");
    let body = json!({"queue": queue, "message": {"data": kilobyte()}, "persistent": true}).to_string();
    let auth = format!("Bearer {}", token());
    Arc::new(move |client: reqwest::Client| Box::pin(expect(authorized_post(&client, &url, &auth, &body), 200, 1)))
}

/// A JSON POST with a bearer token.
fn authorized_post(client: &reqwest::Client, url: &str, auth: &str, body: &str) -> reqwest::RequestBuilder {
    client.post(url).header("content-type", "application/json").header("authorization", auth).body(body.to_owned())
}

fn batch_step(base: &str, topic: &str) -> Step {
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
fn consume_ack_step(base: &str, topic: &str, max: u32, batch_ack: bool) -> Step {
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

/// Publishes `n` messages to a topic in batches of 1000.
async fn prefill(base: &str, topic: &str, n: usize) -> Result<(), String> {
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

fn print_table(figures: &[(String, Figure)]) {
    let baseline = |conns: &str| {
        figures.iter().find(|(n, _)| n == &format!("baseline, {conns} connections")).map(|(_, f)| f.median())
    };
    println!("| scenario | median | spread | ratio to baseline |");
    println!("|---|---:|---:|---:|");
    for (name, f) in figures {
        let conns =
            name.split(", ").find_map(|p| p.strip_suffix(" connections").or_else(|| p.strip_suffix(" consumers")));
        let throughput =
            !name.ends_with(" ms") && !name.contains("MB") && !name.contains("errors") && !name.starts_with("baseline");
        let ratio = match (throughput, conns.and_then(baseline)) {
            (true, Some(b)) if b > 0.0 => format!("{:.2}x", f.median() / b),
            _ => String::new(),
        };
        println!("| {name} | {} | {} | {ratio} |", figure(f.median()), f.spread());
    }
}

/// Small figures (milliseconds, megabytes) with two decimals, rates as whole numbers.
fn figure(value: f64) -> String {
    if value < 100.0 { format!("{value:.2}") } else { format!("{value:.0}") }
}
