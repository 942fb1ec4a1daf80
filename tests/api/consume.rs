//! `POST /api/v1/messages/consume` and `/api/v1/consumers`: what a consume answers,
//! long polls, delivery groups, leases and their expiry, delivery limits, TTL and consumer limits.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::helpers::*;

/// Sends a consume request for up to 10 messages; `extra` adds or overrides fields.
pub(super) async fn try_consume(
    server: &TestServer,
    topic: &str,
    group: &str,
    consumer: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"topic": topic, "group_id": group, "consumer_id": consumer, "max_messages": 10});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    server.post("/api/v1/messages/consume", body).await
}

/// Consumes and answers the messages, asserting a 200 whose count matches its list.
pub(super) async fn consume(server: &TestServer, topic: &str, group: &str, consumer: &str, extra: Value) -> Vec<Value> {
    let (status, answer) = try_consume(server, topic, group, consumer, extra).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let messages = answer["messages"].as_array().unwrap().clone();
    assert_eq!(answer["count"], messages.len(), "{answer}");
    messages
}

/// Publishes `n` small JSON messages and answers their ids, in order.
pub(super) async fn publish_n(server: &TestServer, queue: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(server.publish(queue, json!({"n": i})).await);
    }
    ids
}

/// The message ids of a consume answer, in order.
pub(super) fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap().to_owned()).collect()
}

/// Asserts that each field `want` names has that value in `got` (one assertion showing every difference).
#[track_caller]
pub(super) fn assert_fields(got: &Value, want: Value) {
    let picked: Map<String, Value> = want.as_object().unwrap().keys().map(|k| (k.clone(), got[k].clone())).collect();
    assert_eq!(Value::Object(picked), want, "in {got}");
}

/// Milliseconds since the epoch of an RFC 3339 UTC timestamp as the service writes them.
pub(super) fn millis(v: &Value) -> i64 {
    assert_rfc3339(v);
    let s = v.as_str().unwrap();
    let n = |from: usize, to: usize| s[from..to].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let frac = s.get(20..23).and_then(|f| f.parse::<i64>().ok()).unwrap_or(0);
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + frac
}

#[tokio::test]
async fn a_consumed_message_carries_every_field_and_its_lease() {
    let server = TestServer::start().await;
    let produced = json!({"topic": "orders", "key": "customer-7", "content": "plain text", "headers": {"source": "web"}, "priority": 7});
    let (status, first) = server.post("/api/v1/messages", produced).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let routed = json!({"queue": "orders", "routing_key": "order.created", "message": {"b": [1, 2], "a": "x y"}});
    let (_, second) = server.post("/message-queue/publish", routed).await;
    let (status, answer) =
        try_consume(&server, "orders", "billing", "worker-1", json!({"visibility_timeout": "10s"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, json!({"topic": "orders", "group_id": "billing", "consumer_id": "worker-1", "count": 2}));
    let [a, b] = [&answer["messages"][0], &answer["messages"][1]];
    let id = first["message_id"].as_str().unwrap();
    let want = json!({
        "message_id": id, "topic": "orders", "key": "customer-7", "routing_key": "customer-7", "content": "plain text",
        "headers": {"source": "web"}, "priority": 7, "timestamp": first["timestamp"], "partition": first["partition"],
        "offset": first["offset"], "delivery_count": 1, "retry_count": 0, "receipt_handle": format!("{id}.1"),
    });
    assert_fields(a, want);
    let id = second["message_id"].as_str().unwrap();
    let want = json!({
        "message_id": id, "key": "order.created", "routing_key": "order.created", "content": r#"{"b":[1,2],"a":"x y"}"#,
        "headers": {}, "priority": null, "timestamp": second["published_at"], "offset": second["offset"],
        "delivery_count": 1, "retry_count": 0, "receipt_handle": format!("{id}.1"),
    });
    assert_fields(b, want);
    for m in [a, b] {
        let lease = millis(&m["lease_expires_at"]) - millis(&m["timestamp"]);
        assert!((9_000..=15_000).contains(&lease), "a 10s lease from publication: {lease} ms");
    }
}

#[tokio::test]
async fn max_messages_defaults_to_one_and_bounds_the_batch() {
    let server = TestServer::start().await;
    let published = publish_n(&server, "batch", 3).await;
    let (_, answer) =
        server.post("/api/v1/messages/consume", json!({"topic": "batch", "group_id": "g", "consumer_id": "c"})).await;
    assert_eq!(ids(answer["messages"].as_array().unwrap()), published[..1], "the default is one message");
    assert_eq!(ids(&consume(&server, "batch", "g", "c", json!({"max_messages": 100})).await), published[1..]);
    let bad_requests = [
        ("max_messages", json!({"max_messages": 0})),
        ("max_messages", json!({"max_messages": 101})),
        ("timeout", json!({"timeout": "61s"})),
        ("timeout", json!({"timeout": "soon"})),
        ("visibility_timeout", json!({"visibility_timeout": "0s"})),
        ("visibility_timeout", json!({"visibility_timeout": "12h1s"})),
    ];
    for (field, extra) in bad_requests {
        let (status, answer) = try_consume(&server, "batch", "g", "c", extra.clone()).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], field, "{extra}");
    }
}

#[tokio::test]
async fn an_empty_consume_waits_for_its_timeout_in_every_duration_form() {
    let server = TestServer::start().await;
    server.put("/message-queue/queues/quiet", json!({})).await;
    for timeout in [json!("400000000"), json!(400_000_000u64), json!("400ms"), json!("0.4s")] {
        let started = Instant::now();
        assert!(consume(&server, "quiet", "g", "c", json!({"timeout": timeout})).await.is_empty(), "{timeout}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(380) && waited < Duration::from_secs(3), "{timeout}: {waited:?}");
    }
    let started = Instant::now();
    assert!(consume(&server, "quiet", "g", "c", json!({})).await.is_empty());
    assert!(started.elapsed() < Duration::from_millis(300), "no timeout answers at once");
    let (status, answer) = try_consume(&server, "nowhere", "g", "c", json!({})).await;
    assert_eq!(assert_error(status, &answer, 404, "topic_not_found")["topic"], "nowhere");
}

#[tokio::test]
async fn a_publish_wakes_a_waiting_consume_at_once() {
    let server = Arc::new(TestServer::start().await);
    server.put("/message-queue/queues/wake", json!({})).await;
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move { consume(&server, "wake", "g", "c", json!({"timeout": "5s"})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = Instant::now();
    let id = server.publish("wake", json!({"wake": true})).await;
    let got = waiter.await.unwrap();
    assert!(published.elapsed() < Duration::from_secs(3), "woken by the publish: {:?}", published.elapsed());
    assert_eq!(ids(&got), [id]);
}

#[tokio::test]
async fn every_group_gets_every_message_once() {
    let server = TestServer::start().await;
    let published = publish_n(&server, "events", 3).await;
    for group in ["billing", "shipping"] {
        assert_eq!(ids(&consume(&server, "events", group, "a", json!({})).await), published, "{group}");
        assert!(consume(&server, "events", group, "b", json!({})).await.is_empty(), "{group} holds them all");
    }
    let id = server.publish("events", json!({"n": 3})).await;
    for group in ["billing", "shipping"] {
        assert_eq!(ids(&consume(&server, "events", group, "b", json!({})).await), std::slice::from_ref(&id), "{group}");
    }
}

#[tokio::test]
async fn four_consumers_of_one_group_never_share_a_message() {
    let server = Arc::new(TestServer::start().await);
    let published: HashSet<String> = publish_n(&server, "work", 40).await.into_iter().collect();
    let mut tasks = Vec::new();
    for c in 0..4 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = consume(&server, "work", "g", &format!("c{c}"), json!({"max_messages": 3})).await;
                if batch.is_empty() {
                    return got;
                }
                got.extend(ids(&batch));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 40, "each message handed out exactly once");
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), published);
}

#[tokio::test]
async fn a_lapsed_lease_hands_the_message_out_again() {
    let server = TestServer::start().await;
    let id = server.publish("jobs", json!({"n": 1})).await;
    consume(&server, "jobs", "g", "slow", json!({"visibility_timeout": "300ms"})).await;
    assert!(consume(&server, "jobs", "g", "fast", json!({})).await.is_empty(), "the lease holds");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = consume(&server, "jobs", "g", "fast", json!({})).await;
    assert_fields(&second[0], json!({"message_id": id, "delivery_count": 2, "receipt_handle": format!("{id}.2")}));
    let (_, queue) = server.get("/message-queue/queues/jobs").await;
    assert_fields(&queue["statistics"], json!({"messages_consumed": 2, "messages_redelivered": 1}));
}

#[tokio::test]
async fn the_delivery_limit_dead_letters_a_message_whose_leases_keep_lapsing() {
    let server = TestServer::start().await;
    let arguments = json!({"x-delivery-limit": 2, "x-dead-letter-queue": "q.dlq"});
    server.put("/message-queue/queues/q", json!({"arguments": arguments})).await;
    let id = server.publish("q", json!({"n": 1})).await;
    for delivery in 1..=2 {
        let got = consume(&server, "q", "g", "c", json!({"visibility_timeout": "200ms"})).await;
        assert_fields(&got[0], json!({"message_id": id, "delivery_count": delivery}));
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    assert!(consume(&server, "q", "g", "c", json!({})).await.is_empty(), "a third delivery is over the limit");
    let dead = consume(&server, "q.dlq", "audit", "c", json!({})).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["content"], r#"{"n":1}"#);
    let want = json!({"x-dead-letter-reason": "delivery_limit", "x-original-message-id": id, "x-original-queue": "q"});
    assert_fields(&dead[0]["headers"], want);
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["status"], "dead_lettered");
    let (_, queue) = server.get("/message-queue/queues/q").await;
    assert_eq!(queue["message_count"], 0);
    let want = json!({"messages_dead_lettered": 1, "messages_consumed": 2, "messages_redelivered": 1});
    assert_fields(&queue["statistics"], want);
}

#[tokio::test]
async fn the_environment_sets_the_default_lease_and_delivery_limit() {
    let env = [("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "200ms"), ("MESSAGE_QUEUE_MAX_DELIVERIES", "2")];
    let server = TestServer::start_with(&env).await;
    let id = server.publish("env", json!({"n": 1})).await;
    for delivery in 1..=2 {
        let got = consume(&server, "env", "g", "c", json!({})).await;
        assert_fields(&got[0], json!({"message_id": id, "delivery_count": delivery}));
        let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
        let lease = millis(&got[0]["lease_expires_at"]) - millis(&msg["deliveries"][0]["last_delivered_at"]);
        assert_eq!(lease, 200, "the default lease");
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    assert!(consume(&server, "env", "g", "c", json!({})).await.is_empty(), "the default limit is 2 deliveries");
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["status"], "rejected", "no dead-letter queue: dropped");
}

#[tokio::test]
async fn a_message_past_its_ttl_is_never_delivered() {
    let server = TestServer::start().await;
    // (queue, its arguments, the publish's own ttl, the dead-letter queue if any)
    let cases = [
        ("ttl.queue", json!({"x-message-ttl": 100, "x-dead-letter-queue": "ttl.dlq"}), None, Some("ttl.dlq")),
        ("ttl.dropped", json!({"x-message-ttl": 100}), None, None),
        ("ttl.own", json!({"x-dead-letter-queue": "own.dlq"}), Some("100ms"), Some("own.dlq")),
    ];
    let mut consumed = Vec::new();
    for (queue, arguments, ttl, dlq) in cases {
        server.put(&format!("/message-queue/queues/{queue}"), json!({"arguments": arguments})).await;
        let (status, published) =
            server.post("/api/v1/messages", json!({"topic": queue, "content": "late", "ttl": ttl})).await;
        assert_eq!(status, StatusCode::CREATED, "{published}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(consume(&server, queue, "g", "c", json!({})).await.is_empty(), "{queue}");
        if let Some(dlq) = dlq {
            let dead = consume(&server, dlq, "audit", "c", json!({})).await;
            assert_eq!(dead.len(), 1, "{queue}");
            let want = json!({"x-dead-letter-reason": "expired", "x-original-message-id": published["message_id"]});
            assert_fields(&dead[0]["headers"], want);
        }
        let (_, status) = server.get(&format!("/message-queue/queues/{queue}")).await;
        assert_eq!(status["message_count"], 0, "{queue}");
        let want = json!({"messages_expired": 1, "messages_dead_lettered": u64::from(dlq.is_some())});
        assert_fields(&status["statistics"], want);
        consumed.push((queue, status["statistics"]["messages_consumed"].clone()));
    }
    assert!(consumed.iter().all(|(_, n)| *n == 0), "nothing was handed out, so nothing was consumed: {consumed:?}");
}

#[tokio::test]
async fn a_registered_consumer_is_answered_and_kept_to_its_topics() {
    let server = TestServer::start().await;
    let reg = json!({"consumer_id": "c", "group_id": "g", "topics": ["mine", "ours"], "max_concurrency": 4, "rate_limit": 50});
    let (status, answer) = server.post("/api/v1/consumers", reg.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_fields(&answer, reg);
    assert_rfc3339(&answer["registered_at"]);
    server.publish("mine", json!({"n": 1})).await;
    server.publish("theirs", json!({"n": 1})).await;
    assert_eq!(consume(&server, "mine", "g", "c", json!({})).await.len(), 1);
    let (status, answer) = try_consume(&server, "theirs", "g", "c", json!({})).await;
    assert_error(status, &answer, 403, "forbidden");
    assert_eq!(consume(&server, "theirs", "g", "free", json!({})).await.len(), 1, "unregistered consumers are free");
    let invalid = [("topics", json!([])), ("max_concurrency", json!(0)), ("rate_limit", json!(0))];
    for (field, bad) in invalid {
        let mut body = json!({"consumer_id": "z", "group_id": "g", "topics": ["mine"]});
        body[field] = bad;
        let (status, answer) = server.post("/api/v1/consumers", body).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], field);
    }
}

#[tokio::test]
async fn a_registered_consumer_gets_no_more_than_its_limits_allow() {
    let server = TestServer::start().await;
    publish_n(&server, "limited", 12).await;
    // (consumer, its group, its limit, what one consume of 10 gets before 429)
    let cases = [("c", "g", "max_concurrency", 2), ("r", "h", "rate_limit", 5)];
    for (consumer, group, limit, n) in cases {
        let mut reg = json!({"consumer_id": consumer, "group_id": group, "topics": ["limited"]});
        reg[limit] = json!(n);
        server.post("/api/v1/consumers", reg).await;
        let held = consume(&server, "limited", group, consumer, json!({})).await;
        assert_eq!(held.len(), n, "{limit}");
        let (status, answer) = try_consume(&server, "limited", group, consumer, json!({})).await;
        assert_eq!(assert_error(status, &answer, 429, "rate_limit_exceeded")["limit"], n, "{limit}");
        if limit == "max_concurrency" {
            let ack =
                json!({"message_id": held[0]["message_id"], "topic": "limited", "success": true, "group_id": "g"});
            assert_eq!(server.post("/api/v1/messages/acknowledge", ack).await.0, StatusCode::OK);
            assert_eq!(consume(&server, "limited", group, consumer, json!({})).await.len(), 1, "one slot freed");
            assert_eq!(
                try_consume(&server, "limited", group, consumer, json!({})).await.0,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
    }
}
