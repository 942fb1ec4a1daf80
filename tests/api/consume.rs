//! `POST /api/v1/messages/consume` and `/extend`: what a consume answers, long polls, delivery groups
//! and competing consumers, leases, their lapse, their defaults and their extension.
//! Also the consume helpers the other consumption modules share.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::helpers::*;

/// Sends a consume request for up to 10 messages (`extra` adds or overrides fields) and answers
/// its status and body, having asserted that a 200's `count` matches its list of messages.
pub(super) async fn try_consume(
    server: &TestServer,
    topic: &str,
    group: &str,
    consumer: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"topic": topic, "group_id": group, "consumer_id": consumer, "max_messages": 10});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let (status, answer) = server.post("/api/v1/messages/consume", body).await;
    if status == StatusCode::OK {
        assert_eq!(answer["count"], answer["messages"].as_array().expect("a list of messages").len(), "{answer}");
    }
    (status, answer)
}

/// Like [`try_consume`], asserting a 200: answers the messages.
pub(super) async fn consume(server: &TestServer, topic: &str, group: &str, consumer: &str, extra: Value) -> Vec<Value> {
    let (status, answer) = try_consume(server, topic, group, consumer, extra).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["messages"].as_array().unwrap().clone()
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
async fn a_message_published_between_full_batches_comes_with_the_next() {
    let server = TestServer::start().await;
    let published = publish_n(&server, "between", 5).await;
    let two = json!({"max_messages": 2});
    assert_eq!(ids(&consume(&server, "between", "g", "c", two.clone()).await), published[..2]);
    assert_eq!(ids(&consume(&server, "between", "g", "c", two).await), published[2..4]);
    let later = server.publish("between", json!({"n": "later"})).await;
    // A batch the group's known backlog cannot fill looks again at the log before answering.
    let rest = consume(&server, "between", "g", "c", json!({"max_messages": 10})).await;
    assert_eq!(ids(&rest), [published[4].clone(), later]);
}

#[tokio::test]
async fn a_long_poll_ends_empty_at_its_timeout_in_every_duration_form_or_wakes_on_a_publish() {
    let server = Arc::new(TestServer::start().await);
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
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move { consume(&server, "quiet", "g", "c", json!({"timeout": "5000000000"})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published = Instant::now();
    let id = server.publish("quiet", json!({"wake": true})).await;
    let got = waiter.await.unwrap();
    assert!(published.elapsed() < Duration::from_secs(3), "woken by the publish: {:?}", published.elapsed());
    assert_eq!(ids(&got), [id]);
    let (status, answer) = try_consume(&server, "nowhere", "g", "c", json!({})).await;
    assert_eq!(assert_error(status, &answer, 404, "topic_not_found")["topic"], "nowhere");
}

#[tokio::test]
async fn every_group_gets_every_message_once_and_a_lease_keeps_it_from_the_rest_of_the_group() {
    let server = TestServer::start().await;
    let published = publish_n(&server, "events", 3).await;
    for group in ["billing", "shipping"] {
        let got = consume(&server, "events", group, "a", json!({})).await;
        assert_eq!(ids(&got), published, "{group}");
        for (n, (m, id)) in got.iter().zip(&published).enumerate() {
            let want =
                json!({"content": format!(r#"{{"n":{n}}}"#), "delivery_count": 1, "receipt_handle": format!("{id}.1")});
            assert_fields(m, want);
        }
        assert!(consume(&server, "events", group, "b", json!({})).await.is_empty(), "{group}'s leases hold them all");
    }
    let id = server.publish("events", json!({"n": 3})).await;
    for group in ["billing", "shipping"] {
        assert_eq!(ids(&consume(&server, "events", group, "b", json!({})).await), std::slice::from_ref(&id), "{group}");
    }
    let (_, queue) = server.get("/message-queue/queues/events").await;
    assert_fields(&queue["statistics"], json!({"messages_consumed": 8}));
    assert!(queue["consumer_count"].as_u64().unwrap() >= 2, "{queue}");
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
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["redelivery_count"], 1, "{msg}");
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
async fn an_extended_lease_holds_and_an_ended_one_cannot_be_extended() {
    let server = TestServer::start().await;
    let id = server.publish("long", json!({"n": 1})).await;
    let got = consume(&server, "long", "g", "c", json!({"visibility_timeout": "300ms"})).await;
    let extend = |lease: &str| json!({"message_id": id, "topic": "long", "group_id": "g", "visibility_timeout": lease, "receipt_handle": got[0]["receipt_handle"]});
    let mut without_receipt = extend("3s");
    without_receipt.as_object_mut().unwrap().remove("receipt_handle");
    let (status, answer) = server.post("/api/v1/messages/extend", without_receipt).await;
    assert_eq!(status, StatusCode::OK, "the receipt handle is optional: {answer}");
    assert_fields(&answer, json!({"message_id": id, "topic": "long", "group_id": "g", "delivery_count": 1}));
    let gained = millis(&answer["lease_expires_at"]) - millis(&got[0]["lease_expires_at"]);
    assert!(gained >= 2_000, "the lease moved {gained} ms");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(consume(&server, "long", "g", "other", json!({})).await.is_empty(), "the extended lease holds");
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["deliveries"][0]["lease_expires_at"], answer["lease_expires_at"]);
    assert_eq!(server.post("/api/v1/messages/extend", extend("100ms")).await.0, StatusCode::OK, "a lease may shrink");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, answer) = server.post("/api/v1/messages/extend", extend("5s")).await;
    assert_fields(&assert_error(status, &answer, 409, "lease_expired"), json!({"message_id": id, "group": "g"}));
    assert_eq!(consume(&server, "long", "g", "other", json!({})).await.len(), 1, "the message is free again");
}
