//! The push load test: messages to 3 subscriptions whose receiver fails a
//! fifth of first attempts; every message must reach every subscription.
//! Prints delivery throughput and latency from publish to successful delivery.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, extract::Path, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::json;

use crate::server::{Server, token};

const SUBSCRIPTIONS: usize = 3;

type Seen = Arc<Mutex<HashMap<(usize, String), Instant>>>;

/// One push run's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) messages: usize,
    pub(crate) partitions: u32,
    /// First retry delay, in ms (doubling, 5 retries).
    pub(crate) retry_delay: u64,
    /// Subscriptions ask for ordered delivery (one message at a time per partition).
    pub(crate) ordered: bool,
}

impl Plan {
    /// `[--messages N] [--partitions N] [--retry-delay MS] [--ordered]`; 10,000 over 8 partitions from 50 ms.
    pub(crate) fn parse(args: &[String]) -> Self {
        let number = |name: &str, default: u64| crate::flag(args, name, default);
        Self {
            messages: number("--messages", 10_000) as usize,
            partitions: number("--partitions", 8) as u32,
            retry_delay: number("--retry-delay", 50),
            ordered: args.iter().any(|a| a == "--ordered"),
        }
    }
}

pub(crate) async fn run(plan: Plan) -> Result<(), String> {
    let messages = plan.messages.div_ceil(100) * 100;
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let receiver = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let app = Router::new().route("/s/{n}", post(receive)).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::service_with(dir.path(), &[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32")])?;
    let client = reqwest::Client::new();
    let call = |path: &str, body: serde_json::Value| {
        client.post(format!("{}{path}", server.base)).bearer_auth(token()).json(&body).send()
    };
    call("/api/v1/topics", json!({"name": "push", "partitions": plan.partitions})).await.map_err(|e| e.to_string())?;
    for n in 0..SUBSCRIPTIONS {
        let policy = json!({"max_retries": 5, "retry_delay": plan.retry_delay, "backoff_multiplier": 2});
        let callback = format!("{receiver}/s/{n}");
        let mut body = json!({"queue": "push", "callback_url": callback, "retry_policy": policy, "prefetch_count": 64});
        if plan.ordered {
            body["ordered"] = json!(true);
        }
        call("/message-queue/subscribe", body).await.map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let mut published: HashMap<String, Instant> = HashMap::new();
    for batch in 0..messages / 100 {
        let items: Vec<_> = (0..100)
            .map(|i| json!({"topic": "push", "key": format!("k{}", i % 16), "content": format!("{batch}-{i}")}))
            .collect();
        let resp = call("/api/v1/messages/batch", json!({"messages": items})).await.map_err(|e| e.to_string())?;
        let answer: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        let at = Instant::now();
        for r in answer["results"].as_array().ok_or("batch answer without results")? {
            published.insert(r["message_id"].as_str().ok_or("a batch item failed")?.to_owned(), at);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while seen.lock().map_err(|e| e.to_string())?.len() < messages * SUBSCRIPTIONS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().map_err(|e| e.to_string())?.clone();
    let lost = (0..SUBSCRIPTIONS)
        .flat_map(|n| published.keys().map(move |id| (n, id.clone())))
        .filter(|k| !seen.contains_key(k))
        .count();
    let mut latencies: Vec<f64> = seen
        .iter()
        .filter_map(|((_, id), at)| published.get(id).map(|p| at.saturating_duration_since(*p).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let last = seen.values().max().copied().unwrap_or(started);
    let pick = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
    println!(
        "push ({plan:?}): {} deliveries of {} in {:.1} s, {:.0} deliveries/s; publish to delivery p50 {:.0} ms, \
         p99 {:.0} ms; lost {lost}",
        seen.len(),
        messages * SUBSCRIPTIONS,
        (last - started).as_secs_f64(),
        seen.len() as f64 / (last - started).as_secs_f64(),
        pick(0.5),
        pick(0.99)
    );
    if lost > 0 { Err(format!("{lost} deliveries never succeeded")) } else { Ok(()) }
}

/// Fails a fifth of first attempts (chosen by message id), records the first success of each.
async fn receive(State(seen): State<Seen>, Path(n): Path<usize>, headers: HeaderMap) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = header("webhook-id");
    let unlucky = id.bytes().map(u32::from).sum::<u32>() % 5 == 0;
    if header("x-delivery-attempt") == "1" && unlucky {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Ok(mut seen) = seen.lock() {
        seen.entry((n, id)).or_insert_with(Instant::now);
    }
    StatusCode::OK
}
