//! Two server processes on one PostgreSQL database, publishers and consumers spread over both at
//! random: several groups, leases lapsing, negative acknowledgements requeueing, acknowledgements
//! sent after the lease lapsed. The ledger: no delivery of a message goes to two consumers, no
//! lease is granted while another holds, only a delivery's holder finishes it, no acknowledged
//! message comes back to its group, and in the end every message is acknowledged exactly once per
//! group. `MQ_TEST_SEED` replays a run's choices (each run prints its seed).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
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

/// One lease as a consumer saw it.
struct Seen {
    consumer: String,
    granted: i64,
    until: i64,
    /// When its holder sent a negative acknowledgement (answered 200).
    let_go: Option<i64>,
}

impl Seen {
    fn end(&self) -> i64 {
        self.let_go.map_or(self.until, |t| t.min(self.until))
    }
}

/// What the consumers saw, checked as it is recorded. Answers reach the test in any order (one
/// consumer's answer may come after another's later lease of the same message), so each lease
/// is checked against the deliveries before and after it, whichever was recorded first.
#[derive(Default)]
struct Ledger {
    /// (group, message) -> delivery count -> the lease.
    leases: HashMap<(String, String), BTreeMap<u64, Seen>>,
    /// (group, message) -> the delivery acknowledged.
    acknowledged: HashMap<(String, String), u64>,
    /// (group, message, delivery) -> when its acknowledgement was sent.
    acks_sent: HashMap<(String, String, u64), i64>,
    /// Acknowledgements answered 200 for another delivery than they named: (group, message, that
    /// delivery, when answered). Each must be a repeat of that delivery's own acknowledgement.
    repeats: Vec<(String, String, u64, i64)>,
    violations: Vec<String>,
}

impl Ledger {
    fn delivered(&mut self, group: &str, consumer: &str, m: &Value) {
        let id = m["message_id"].as_str().unwrap().to_owned();
        let delivery = m["delivery_count"].as_u64().unwrap();
        let until = epoch_ms(m["lease_expires_at"].as_str().unwrap());
        let key = (group.to_owned(), id.clone());
        if let Some(acked) = self.acknowledged.get(&key).filter(|a| **a < delivery) {
            self.violations
                .push(format!("{id} delivery {delivery} in {group} after delivery {acked} was acknowledged"));
        }
        let seen = Seen { consumer: consumer.to_owned(), granted: until - LEASE_MS, until, let_go: None };
        let leases = self.leases.entry(key).or_default();
        if let Some(other) = leases.get(&delivery) {
            let other = &other.consumer;
            self.violations.push(format!("{id} delivery {delivery} in {group} went to {other} and {consumer}"));
            return;
        }
        leases.insert(delivery, seen);
        self.check_around(group, &id, delivery);
    }

    /// Checks that the lease `delivery` began after the one before it ended, and ended before the next began.
    fn check_around(&mut self, group: &str, id: &str, delivery: u64) {
        let leases = &self.leases[&(group.to_owned(), id.to_owned())];
        let this = &leases[&delivery];
        let before = leases.range(..delivery).next_back();
        let after = leases.range(delivery + 1..).next();
        for (earlier, later) in
            [before.map(|b| (b, (&delivery, this))), after.map(|a| ((&delivery, this), a))].into_iter().flatten()
        {
            if later.1.granted + SLACK_MS < earlier.1.end() {
                let (at, consumer) = (earlier.1.end() - later.1.granted, &later.1.consumer);
                self.violations.push(format!(
                    "{id} in {group}: delivery {} to {consumer} {at} ms before delivery {} ended",
                    later.0, earlier.0
                ));
            }
        }
    }

    /// The consumer is giving its lease back (a negative acknowledgement sent at `at`); `None`
    /// takes that back when the service refused it.
    fn let_go(&mut self, group: &str, id: &str, delivery: u64, at: Option<i64>) {
        if let Some(seen) = self.leases.get_mut(&(group.to_owned(), id.to_owned())).and_then(|l| l.get_mut(&delivery)) {
            seen.let_go = at;
            self.check_around(group, id, delivery);
        }
    }

    fn acknowledged(&mut self, group: &str, id: &str, delivery: u64) {
        let key = (group.to_owned(), id.to_owned());
        if let Some((later, _)) = self.leases.get(&key).and_then(|l| l.range(delivery + 1..).next()) {
            self.violations
                .push(format!("{id} delivery {later} in {group} after delivery {delivery} was acknowledged"));
        }
        self.acknowledged.insert(key, delivery);
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
        let mut violations = ledger.violations.clone();
        // Only the holder of a delivery may finish it: an acknowledgement answered for another
        // delivery repeats that delivery's own acknowledgement, sent before it was answered.
        for (group, id, delivery, answered) in &ledger.repeats {
            let sent = ledger.acks_sent.get(&(group.clone(), id.clone(), *delivery));
            if sent.is_none_or(|sent| sent > answered) {
                violations
                    .push(format!("{id} delivery {delivery} in {group} finished by an acknowledgement of another"));
            }
        }
        assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
        for group in GROUPS {
            let missing =
                published.iter().filter(|id| !ledger.acknowledged.contains_key(&(group.to_owned(), (*id).clone())));
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
        && published.iter().all(|id| ledger.acknowledged.contains_key(&(group.to_owned(), id.clone())))
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
    // Marked before sending: the service cannot release the lease before it receives the request.
    if !success {
        ledger.lock().unwrap().let_go(group, id, delivery, Some(now_ms()));
    }
    let body = json!({"topic": TOPIC, "group_id": group, "message_id": id, "success": success,
        "receipt_handle": m["receipt_handle"]});
    if success {
        ledger.lock().unwrap().acks_sent.insert((group.to_owned(), id.to_owned(), delivery), now_ms());
    }
    let (status, answer) = server.post("/api/v1/messages/acknowledge", body).await;
    match (status, success) {
        // A late acknowledgement of a message another consumer acknowledged since answers that one.
        (StatusCode::OK, true) => {
            let finished = answer["delivery_count"].as_u64().expect("the acknowledged delivery");
            let mut ledger = ledger.lock().unwrap();
            if finished != delivery {
                ledger.repeats.push((group.to_owned(), id.to_owned(), finished, now_ms()));
            }
            ledger.acknowledged(group, id, finished)
        }
        (StatusCode::OK, false) => {}
        // The lease lapsed, and the message may meanwhile have gone out again or been acknowledged.
        (StatusCode::CONFLICT, _) => {
            assert!(["lease_expired", "already_settled"].contains(&answer["error"].as_str().unwrap_or("")), "{answer}");
            if !success {
                ledger.lock().unwrap().let_go(group, id, delivery, None);
            }
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
