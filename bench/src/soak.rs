//! `mq-bench soak`: steady publish, consume and acknowledge on PostgreSQL for minutes, with a
//! transaction held open and idle for one minute in the middle (as a forgotten session or a
//! long report would), reporting per window the claim (consume) latency, the rate, and the
//! size and dead rows of the store's busiest tables. Run under `infra/postgres.sh`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    pg::{Scratch, TableSize, connect, table_sizes},
    server::{Server, token},
};

/// Settings: `--minutes M` (10), `--rate R` messages a second (500), `--window S` seconds (30).
pub(crate) struct Plan {
    minutes: u64,
    rate: u64,
    window: Duration,
}

impl Plan {
    pub(crate) fn parse(args: &[String]) -> Self {
        let value = |name: &str, default: u64| crate::flag(args, name, default);
        Self {
            minutes: value("--minutes", 10),
            rate: value("--rate", 500),
            window: Duration::from_secs(value("--window", 30)),
        }
    }
}

const TOPIC: &str = "soak";
const CONSUMERS: usize = 4;
/// How long the idle transaction is held.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// What the clients measured since the last window.
#[derive(Default)]
struct Window {
    claims_us: Vec<u64>,
    acknowledged: u64,
    errors: u64,
}

pub(crate) async fn run(plan: Plan) -> Result<(), String> {
    let db = Scratch::create("soak").await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service_with(dir.path(), &[("MESSAGE_QUEUE_STORE", db.url.as_str())])?;
    let admin = connect(&db.url).await?;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/topics", server.base))
        .bearer_auth(token())
        .json(&json!({"name": TOPIC, "partitions": 4}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !created.status().is_success() {
        return Err(format!("creating the topic: {}", created.status()));
    }
    let window = Arc::new(Mutex::new(Window::default()));
    let running = Arc::new(AtomicBool::new(true));
    let published = Arc::new(AtomicU64::new(0));
    let mut tasks =
        vec![tokio::spawn(publish(server.base.clone(), plan.rate, running.clone(), published.clone(), window.clone()))];
    for c in 0..CONSUMERS {
        tasks.push(tokio::spawn(consume(server.base.clone(), c, running.clone(), window.clone())));
    }
    let total = Duration::from_secs(plan.minutes * 60);
    let idle_from = total / 2 - IDLE_FOR / 2;
    let start = Instant::now();
    let mut idle: Option<tokio_postgres::Client> = None;
    println!(
        "{} msg/s for {} min, {CONSUMERS} consumers (max 10, batch acknowledge), 1 KB messages; idle transaction from {} s for {} s",
        plan.rate,
        plan.minutes,
        idle_from.as_secs(),
        IDLE_FOR.as_secs()
    );
    println!(
        "| at s | claim p50 ms | claim p99 ms | acknowledged/s | errors | message_leases KB (dead rows) | message_settled KB | message_messages KB | message_partitions KB (dead rows) | message_group_offsets KB (dead rows) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    print_row(0, &mut Window::default(), plan.window, &table_sizes(&admin).await?, false);
    while start.elapsed() < total {
        tokio::time::sleep(plan.window.min(total - start.elapsed())).await;
        let at = start.elapsed();
        if idle.is_none() && at >= idle_from && at < idle_from + IDLE_FOR {
            let holder = connect(&db.url).await?;
            holder
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM message_leases;")
                .await
                .map_err(|e| e.to_string())?;
            idle = Some(holder);
        } else if idle.is_some() && at >= idle_from + IDLE_FOR {
            let holder = idle.take().expect("held");
            holder.batch_execute("COMMIT").await.map_err(|e| e.to_string())?;
        }
        let mut taken = std::mem::take(&mut *window.lock().expect("window"));
        print_row(at.as_secs(), &mut taken, plan.window, &table_sizes(&admin).await?, idle.is_some());
    }
    running.store(false, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    println!("published {} in all", published.load(Ordering::SeqCst));
    drop(server);
    db.drop_now().await
}

fn print_row(at: u64, window: &mut Window, length: Duration, sizes: &[TableSize], idle: bool) {
    window.claims_us.sort_unstable();
    let quantile = |q: f64| {
        let n = window.claims_us.len();
        if n == 0 { 0.0 } else { window.claims_us[((n - 1) as f64 * q) as usize] as f64 / 1000.0 }
    };
    let size = |table: &str, dead: bool| {
        sizes.iter().find(|s| s.table == table).map_or("-".to_owned(), |s| {
            let kb = s.bytes / 1024;
            if dead { format!("{kb} ({}; live {})", s.dead, s.live) } else { format!("{kb}") }
        })
    };
    println!(
        "| {at}{} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} |",
        if idle { " (idle transaction open)" } else { "" },
        quantile(0.5),
        quantile(0.99),
        window.acknowledged as f64 / length.as_secs_f64(),
        window.errors,
        size("message_leases", true),
        size("message_settled", false),
        size("message_messages", false),
        size("message_partitions", true),
        size("message_group_offsets", true),
    );
}

/// Publishes `rate` messages a second, a tenth of a second's worth every 100 ms.
async fn publish(
    base: String,
    rate: u64,
    running: Arc<AtomicBool>,
    published: Arc<AtomicU64>,
    window: Arc<Mutex<Window>>,
) {
    let client = reqwest::Client::new();
    let body = json!({"queue": TOPIC, "message": {"data": "x".repeat(1000)}}).to_string();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while running.load(Ordering::SeqCst) {
        every.tick().await;
        let mut sends = tokio::task::JoinSet::new();
        for _ in 0..rate / 10 {
            let req = client
                .post(format!("{base}/message-queue/publish"))
                .bearer_auth(token())
                .header("content-type", "application/json")
                .body(body.clone());
            sends.spawn(async move { req.send().await.map(|r| r.status().is_success()).unwrap_or(false) });
        }
        for ok in sends.join_all().await {
            if ok {
                published.fetch_add(1, Ordering::Relaxed);
            } else {
                window.lock().expect("window").errors += 1;
            }
        }
    }
}

/// Consumes up to 10 at a time (without waiting) and acknowledges them in one call; each
/// consume that leased something is timed as a claim.
async fn consume(base: String, consumer: usize, running: Arc<AtomicBool>, window: Arc<Mutex<Window>>) {
    let client = reqwest::Client::new();
    while running.load(Ordering::SeqCst) {
        let body = json!({"topic": TOPIC, "group_id": "soak", "consumer_id": format!("c{consumer}"),
            "max_messages": 10});
        let began = Instant::now();
        let Some(got) = post(&client, &format!("{base}/api/v1/messages/consume"), &body).await else {
            window.lock().expect("window").errors += 1;
            continue;
        };
        let took = began.elapsed();
        let messages = got["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let items: Vec<Value> = messages
            .iter()
            .map(|m| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]}))
            .collect();
        let body = json!({"messages": items, "topic": TOPIC, "success": true, "group_id": "soak"});
        let acked = post(&client, &format!("{base}/api/v1/messages/acknowledge"), &body).await;
        let mut w = window.lock().expect("window");
        w.claims_us.push(took.as_micros() as u64);
        match acked {
            Some(answer) => w.acknowledged += answer["succeeded"].as_u64().unwrap_or(0),
            None => w.errors += 1,
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Option<Value> {
    let resp = client.post(url).bearer_auth(token()).json(body).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}
