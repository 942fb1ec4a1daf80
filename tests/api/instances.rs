//! Two server processes on one PostgreSQL database, publishers and consumers spread over both at
//! random: several groups, leases lapsing, negative acknowledgements requeueing. The ledger: no
//! delivery of a message is handed to two consumers, no lease is handed out while another holds,
//! no acknowledged message comes back to its group, and in the end every message is acknowledged
//! exactly once per group. `MQ_TEST_SEED` replays a run (each run prints its seed).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

const TOPIC: &str = "shared-work";
const GROUPS: [&str; 3] = ["billing", "audit", "search"];
const CONSUMERS_PER_GROUP: usize = 3;
const PER_PUBLISHER: usize = 120;
const LEASE_MS: i64 = 400;
/// Clock steps between the two processes' and the test's readings of one clock, in ms.
const SLACK_MS: i64 = 5;

/// A small deterministic generator (xorshift64*), so a seed replays a run's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the consumers saw, checked as they see it.
#[derive(Default)]
struct Ledger {
    /// (group, message, delivery) -> consumer.
    deliveries: HashMap<(String, String, u64), String>,
    /// (group, message) -> the latest lease: its end, and when its holder let it go early.
    latest: HashMap<(String, String), (u64, i64, Option<i64>)>,
    /// (group, message) acknowledged.
    acknowledged: HashSet<(String, String)>,
    violations: Vec<String>,
}

impl Ledger {
    fn delivered(&mut self, group: &str, consumer: &str, m: &Value) {
        let id = m["message_id"].as_str().unwrap().to_owned();
        let delivery = m["delivery_count"].as_u64().unwrap();
        let until = epoch_ms(m["lease_expires_at"].as_str().unwrap());
        let granted = until - LEASE_MS;
        let key = (group.to_owned(), id.clone());
        if self.acknowledged.contains(&key) {
            self.violations.push(format!("{id} delivered to {group} again after its acknowledgement"));
        }
        if let Some(other) = self.deliveries.insert((group.to_owned(), id.clone(), delivery), consumer.to_owned()) {
            self.violations.push(format!("{id} delivery {delivery} in {group} went to {other} and {consumer}"));
        }
        if let Some((before, end, let_go)) = self.latest.get(&key).copied() {
            let held_until = let_go.map_or(end, |t| t.min(end));
            if delivery <= before {
                self.violations.push(format!("{id} in {group}: delivery {delivery} after {before}"));
            } else if granted + SLACK_MS < held_until {
                let at = held_until - granted;
                self.violations
                    .push(format!("{id} in {group} leased to {consumer} {at} ms before the last lease ended"));
            }
        }
        self.latest.insert(key, (delivery, until, None));
    }

    /// The consumer gave its lease back (a negative acknowledgement sent at `at`).
    fn let_go(&mut self, group: &str, id: &str, delivery: u64, at: i64) {
        if let Some(lease) = self.latest.get_mut(&(group.to_owned(), id.to_owned()))
            && lease.0 == delivery
        {
            lease.2 = Some(at);
        }
    }

    fn acknowledged(&mut self, group: &str, id: &str) {
        self.acknowledged.insert((group.to_owned(), id.to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_deliver_each_message_once_per_group() {
    let seed = std::env::var("MQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    println!("MQ_TEST_SEED={seed}");
    let env = [("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "400ms"), ("MESSAGE_QUEUE_MAX_DELIVERIES", "1000")];
    let first = TestServer::start_with(&env).await;
    let url = first.store.clone().expect("the PostgreSQL suite gives a store");
    let second = TestServer::start_with(&[&env[..], &[("MESSAGE_QUEUE_STORE", url.as_str())]].concat()).await;
    let servers = Arc::new([first, second]);
    let (status, body) = servers[0].post("/api/v1/topics", json!({"name": TOPIC, "partitions": 3})).await;
    assert!(status.is_success(), "{body}");

    let published = Arc::new(Mutex::new(HashSet::new()));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for p in 0..2 {
        let (servers, published) = (servers.clone(), published.clone());
        let mut rng = Rng(seed.wrapping_add(p as u64 * 7919) | 1);
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                let server = &servers[rng.below(2) as usize];
                let id = server.publish(TOPIC, json!({"publisher": p, "i": i})).await;
                published.lock().unwrap().insert(id);
                tokio::time::sleep(Duration::from_millis(rng.below(8))).await;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for (g, group) in GROUPS.iter().enumerate() {
        for c in 0..CONSUMERS_PER_GROUP {
            let (servers, published, ledger) = (servers.clone(), published.clone(), ledger.clone());
            let mut rng = Rng(seed.wrapping_mul(31 + (g * 7 + c) as u64) | 1);
            let consumer = format!("{group}-{c}");
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline && !done(&ledger, &published, group) {
                    let server = &servers[rng.below(2) as usize];
                    let max = 1 + rng.below(5);
                    let body = json!({"topic": TOPIC, "group_id": group, "consumer_id": consumer, "max_messages": max});
                    let (status, answer) = server.post("/api/v1/messages/consume", body).await;
                    assert_eq!(status, StatusCode::OK, "{answer}");
                    let messages = answer["messages"].as_array().unwrap().clone();
                    if messages.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    for m in &messages {
                        ledger.lock().unwrap().delivered(group, &consumer, m);
                    }
                    for m in &messages {
                        settle(&servers[rng.below(2) as usize], group, m, rng.below(100), &ledger).await;
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }

    let published = published.lock().unwrap().clone();
    assert_eq!(published.len(), 2 * PER_PUBLISHER);
    {
        let ledger = ledger.lock().unwrap();
        assert!(ledger.violations.is_empty(), "seed {seed}: {:#?}", ledger.violations);
        for group in GROUPS {
            let missing =
                published.iter().filter(|id| !ledger.acknowledged.contains(&(group.to_owned(), (*id).clone())));
            assert_eq!(missing.count(), 0, "seed {seed}: {group} did not acknowledge everything within 90 s");
        }
    }
    // The store's own account, through either instance: each group finished each message once.
    for (i, id) in published.iter().enumerate() {
        let (status, message) = servers[i % 2].get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{message}");
        let states: Vec<&Value> = message["deliveries"].as_array().unwrap().iter().map(|d| &d["status"]).collect();
        assert_eq!(states, vec!["acknowledged"; GROUPS.len()], "seed {seed}: {message}");
    }
    let (_, queue) = servers[1].get(&format!("/message-queue/queues/{TOPIC}")).await;
    let acknowledged = (published.len() * GROUPS.len()) as u64;
    assert_eq!(queue["statistics"]["messages_acknowledged"], acknowledged, "seed {seed}: {queue}");
}

#[tokio::test]
async fn a_long_poll_wakes_when_another_instance_publishes() {
    // Re-checks an hour apart: only the signal between the instances can wake the poll in time.
    let env = [("MESSAGE_QUEUE_RECHECK", "1h")];
    let first = TestServer::start_with(&env).await;
    let url = first.store.clone().expect("the PostgreSQL suite gives a store");
    let second = Arc::new(TestServer::start_with(&[&env[..], &[("MESSAGE_QUEUE_STORE", url.as_str())]].concat()).await);
    let (status, body) = first.post("/api/v1/topics", json!({"name": "woken"})).await;
    assert!(status.is_success(), "{body}");
    let waiting = {
        let second = second.clone();
        let body = json!({"topic": "woken", "group_id": "g", "consumer_id": "c", "timeout": "30s"});
        tokio::spawn(async move { second.post("/api/v1/messages/consume", body).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = first.publish("woken", json!({"n": 1})).await;
    let (status, answer) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["messages"][0]["message_id"], id.as_str(), "{answer}");
}

/// Whether the group has acknowledged every message, once publishing ended.
fn done(ledger: &Mutex<Ledger>, published: &Mutex<HashSet<String>>, group: &str) -> bool {
    let published = published.lock().unwrap();
    let ledger = ledger.lock().unwrap();
    published.len() == 2 * PER_PUBLISHER
        && published.iter().all(|id| ledger.acknowledged.contains(&(group.to_owned(), id.clone())))
}

/// Settles one delivered message by a choice out of 100: acknowledge (65), requeue (15), let the
/// lease lapse (10), or acknowledge after it lapsed (10: refused if it went out again meanwhile).
async fn settle(server: &TestServer, group: &str, m: &Value, choice: u64, ledger: &Mutex<Ledger>) {
    let id = m["message_id"].as_str().unwrap();
    let delivery = m["delivery_count"].as_u64().unwrap();
    let success = match choice {
        0..65 => true,
        65..80 => false,
        80..90 => return,
        _ => {
            tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 + 50)).await;
            true
        }
    };
    let sent = now_ms();
    let body = json!({"topic": TOPIC, "group_id": group, "message_id": id, "success": success,
        "receipt_handle": m["receipt_handle"]});
    let (status, answer) = server.post("/api/v1/messages/acknowledge", body).await;
    match (status, success) {
        (StatusCode::OK, true) => ledger.lock().unwrap().acknowledged(group, id),
        (StatusCode::OK, false) => ledger.lock().unwrap().let_go(group, id, delivery, sent),
        // The lease lapsed, and the message may meanwhile have gone out again or been acknowledged.
        (StatusCode::CONFLICT, _) => {
            assert!(["lease_expired", "already_settled"].contains(&answer["error"].as_str().unwrap_or("")), "{answer}")
        }
        _ => panic!("{status}: {answer}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(text: &str) -> i64 {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

#[test]
fn rfc3339_times_read_back_as_epoch_milliseconds() {
    assert_eq!(epoch_ms("1970-01-01T00:00:00.000Z"), 0);
    assert_eq!(epoch_ms("2026-12-02T22:10:21.435Z"), 1_796_249_421_435);
}
