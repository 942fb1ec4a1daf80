//! A publish-and-consume run with a fault in the middle, and its ledger: every error answered
//! is a clean 503 with `Retry-After` in the error shape; every publish answered 2xx is
//! acknowledged in the end; no message acknowledged (answered 200) is delivered to its group
//! again. The faults themselves are the suites' own (`faults.rs`, `kafka_faults.rs`).

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::TestServer;

const QUEUE: &str = "faulted";
const GROUP: &str = "g";
const PUBLISHERS: usize = 2;
const CONSUMERS: usize = 2;
const PER_PUBLISHER: usize = 150;

#[derive(Default)]
pub struct Ledger {
    published: HashSet<String>,
    acknowledged: HashSet<String>,
    /// 503 answers seen (each checked for its shape).
    pub unavailable: usize,
    violations: Vec<String>,
}

/// One run: the server the clients talk to (replaced when it is killed), and what they saw.
pub struct Run {
    pub server: RwLock<Arc<TestServer>>,
    pub ledger: Mutex<Ledger>,
    publishers_done: AtomicUsize,
    fault_over: AtomicBool,
    /// Whether the service itself may be gone for a while (it is killed and started again).
    service_gaps: bool,
}

impl Run {
    pub fn current(&self) -> Arc<TestServer> {
        self.server.read().unwrap().clone()
    }

    fn violation(&self, what: String) {
        self.ledger.lock().unwrap().violations.push(what);
    }

    /// A POST to the current server: its answer unless it was a 503 or none came. A 503 is
    /// checked for `Retry-After` and the error shape; no answer is a violation unless the
    /// service may be gone.
    async fn post(&self, path: &str, body: &Value) -> Option<(StatusCode, Value)> {
        let server = self.current();
        let url = format!("{}{path}", server.base);
        let sent = server.client.post(url).bearer_auth(&server.token).json(body).send().await;
        let answered = match sent {
            Ok(resp) => {
                let (status, retry_after) = (resp.status(), resp.headers().contains_key("retry-after"));
                resp.text().await.map(|text| (status, retry_after, serde_json::from_str(&text).unwrap_or(Value::Null)))
            }
            Err(e) => Err(e),
        };
        match answered {
            Ok((StatusCode::SERVICE_UNAVAILABLE, retry_after, answer)) => {
                let shaped = answer["error"] == "service_unavailable"
                    && answer["message"].is_string()
                    && answer["details"].is_object();
                if !retry_after || !shaped {
                    self.violation(format!("{path}: a 503 without Retry-After or the error shape: {answer}"));
                }
                self.ledger.lock().unwrap().unavailable += 1;
                None
            }
            Ok((status, _, answer)) => Some((status, answer)),
            Err(e) => {
                if !self.service_gaps {
                    self.violation(format!("{path}: no answer while the service runs: {e}"));
                }
                None
            }
        }
    }

    async fn publish(&self, publisher: usize) {
        for i in 0..PER_PUBLISHER {
            let body = json!({"queue": QUEUE, "message": {"publisher": publisher, "i": i}});
            match self.post("/message-queue/publish", &body).await {
                Some((StatusCode::OK, answer)) => {
                    let id = answer["message_id"].as_str().unwrap().to_owned();
                    self.ledger.lock().unwrap().published.insert(id);
                }
                Some((status, answer)) => self.violation(format!("publish: {status} {answer}")),
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.publishers_done.fetch_add(1, Ordering::SeqCst);
    }

    /// Consumes and acknowledges until, with publishing and the fault over, nothing has come for
    /// longer than a lease (so leases lost with an answer have come back and been taken).
    async fn consume(&self, consumer: usize) {
        let consumer = format!("c{consumer}");
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let settled =
                self.publishers_done.load(Ordering::SeqCst) == PUBLISHERS && self.fault_over.load(Ordering::SeqCst);
            if settled && quiet_since.elapsed() > Duration::from_secs(3) {
                return;
            }
            let body = json!({"topic": QUEUE, "group_id": GROUP, "consumer_id": consumer, "max_messages": 10,
                "timeout": "500ms"});
            let messages = match self.post("/api/v1/messages/consume", &body).await {
                Some((StatusCode::OK, answer)) => answer["messages"].as_array().unwrap().clone(),
                Some((status, answer)) => {
                    self.violation(format!("consume: {status} {answer}"));
                    continue;
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            for m in messages {
                self.acknowledge(&m).await;
            }
            quiet_since = Instant::now();
        }
        self.violation(format!("{consumer} still consuming after 90 s"));
    }

    async fn acknowledge(&self, m: &Value) {
        let id = m["message_id"].as_str().unwrap().to_owned();
        if self.ledger.lock().unwrap().acknowledged.contains(&id) {
            self.violation(format!("{id} delivered again after its acknowledgement: {m}"));
        }
        let body = json!({"topic": QUEUE, "group_id": GROUP, "message_id": id, "success": true,
            "receipt_handle": m["receipt_handle"]});
        match self.post("/api/v1/messages/acknowledge", &body).await {
            Some((StatusCode::OK, _)) => {
                self.ledger.lock().unwrap().acknowledged.insert(id);
            }
            // The lease lapsed while the database was away: the message comes back.
            Some((StatusCode::CONFLICT, answer)) if answer["error"] == "lease_expired" => {}
            Some((status, answer)) => self.violation(format!("acknowledge {id}: {status} {answer}")),
            // Unknown whether it was applied: the store's account at the end says.
            None => {}
        }
    }
}

/// Runs publishers and consumers against `server`, calls `fault` once the run is under way, and
/// checks the ledger and the store's account at the end.
pub async fn run_with_fault<F, Fut>(server: TestServer, service_gaps: bool, fault: F) -> Arc<Run>
where
    F: FnOnce(Arc<Run>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (status, body) = server.post("/api/v1/topics", json!({"name": QUEUE, "partitions": 2})).await;
    assert!(status.is_success(), "{body}");
    let run = Arc::new(Run {
        server: RwLock::new(Arc::new(server)),
        ledger: Mutex::default(),
        publishers_done: AtomicUsize::new(0),
        fault_over: AtomicBool::new(false),
        service_gaps,
    });
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let run = run.clone();
        tasks.push(tokio::spawn(async move { run.publish(p).await }));
    }
    for c in 0..CONSUMERS {
        let run = run.clone();
        tasks.push(tokio::spawn(async move { run.consume(c).await }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    fault(run.clone()).await;
    run.fault_over.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("no client panicked");
    }

    let published = {
        let ledger = run.ledger.lock().unwrap();
        assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
        let (published, acknowledged, unavailable) =
            (ledger.published.len(), ledger.acknowledged.len(), ledger.unavailable);
        println!("published {published}, acknowledged {acknowledged} (answered 200), 503s {unavailable}");
        ledger.published.clone()
    };
    assert!(published.len() > 20, "publishes were answered ({} of them)", published.len());
    // The store's account: every message answered 2xx is there, acknowledged by the group once.
    let server = run.current();
    for id in &published {
        let (status, message) = server.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id} was answered 2xx and is gone: {message}");
        let states: Vec<&Value> = message["deliveries"].as_array().unwrap().iter().map(|d| &d["status"]).collect();
        assert_eq!(states, vec!["acknowledged"], "{message}");
    }
    run
}
