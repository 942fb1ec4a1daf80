//! Publishing rules: TTL precedence and expiry, partitioning, auto-create, concurrency.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn ttl_comes_from_the_message_else_the_queue_else_the_default() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_TTL", "2h")]).await;
    server.put("/message-queue/queues/with-ttl", json!({"arguments": {"x-message-ttl": 60000}})).await;
    let cases = [("with-ttl", Some(30), 30), ("with-ttl", None, 60), ("plain", None, 7200), ("plain", Some(5), 5)];
    for (queue, ttl, want) in cases {
        let mut body = json!({"queue": queue, "message": {"n": 1}});
        if let Some(ttl) = ttl {
            body["ttl"] = json!(ttl);
        }
        let (status, answer) = server.post("/message-queue/publish", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["ttl"], want, "{queue} {ttl:?}");
    }
}

#[tokio::test]
async fn api_v1_ttl_accepts_every_duration_form() {
    let server = TestServer::start().await;
    for ttl in [json!("3600000000000"), json!(3_600_000_000_000u64), json!("1h"), json!("30m30m")] {
        let (status, body) = server.post("/api/v1/messages", json!({"topic": "t", "content": "x", "ttl": ttl})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["ttl"], "3600000000000", "{ttl}");
    }
}

#[tokio::test]
async fn an_expired_message_is_reported_expired_and_not_counted() {
    let server = TestServer::start().await;
    server.put("/message-queue/queues/short", json!({"arguments": {"x-message-ttl": 50}})).await;
    let id = server.publish("short", json!({"n": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["status"], "expired");
    let (_, queue) = server.get("/message-queue/queues/short").await;
    assert_eq!(queue["message_count"], 0);
    assert_eq!(queue["statistics"]["messages_published"], 1);
}

#[tokio::test]
async fn one_key_always_lands_on_one_partition() {
    let server = TestServer::start().await;
    server.post("/api/v1/topics", json!({"name": "orders", "partitions": 3})).await;
    let mut partitions_of = std::collections::HashMap::new();
    for i in 0..30 {
        let key = format!("customer-{}", i % 6);
        let (status, body) =
            server.post("/api/v1/messages", json!({"topic": "orders", "key": key, "content": "x"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let partition = body["partition"].as_u64().unwrap();
        assert!(partition < 3);
        assert_eq!(*partitions_of.entry(key).or_insert(partition), partition);
    }
    let used: HashSet<u64> = partitions_of.values().copied().collect();
    assert!(used.len() > 1, "six keys all hashed to one partition: {partitions_of:?}");
    let (_, topic) = server.get("/api/v1/topics/orders").await;
    let ends: u64 =
        topic["partition_offsets"].as_array().unwrap().iter().map(|p| p["end_offset"].as_u64().unwrap()).sum();
    assert_eq!(ends, 30);
}

#[tokio::test]
async fn concurrent_publishes_get_distinct_ids_and_dense_offsets() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25 {
                ids.push(server.publish("busy", json!({"worker": worker, "i": i})).await);
            }
            ids
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), 200);
    let (_, queue) = server.get("/message-queue/queues/busy").await;
    assert_eq!(queue["message_count"], 200);
    assert_eq!(queue["statistics"]["messages_published"], 200);
}

#[tokio::test]
async fn publishing_to_an_unknown_queue_creates_it_unless_auto_create_is_off() {
    let server = TestServer::start().await;
    server.publish("fresh", json!({"a": 1})).await;
    let (status, _) = server.get("/message-queue/queues/fresh").await;
    assert_eq!(status, StatusCode::OK);

    let strict = TestServer::start_with(&[("MESSAGE_QUEUE_AUTO_CREATE", "false")]).await;
    let (status, body) = strict.post("/message-queue/publish", json!({"queue": "fresh", "message": {"a": 1}})).await;
    assert_eq!(assert_error(status, &body, 404, "queue_not_found")["queue"], "fresh");
    let (status, body) = strict.post("/api/v1/messages", json!({"topic": "fresh", "content": "x"})).await;
    assert_eq!(assert_error(status, &body, 404, "topic_not_found")["topic"], "fresh");
    let (status, _) = strict.put("/message-queue/queues/fresh", json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    strict.publish("fresh", json!({"a": 1})).await;
}

#[tokio::test]
async fn persistent_false_and_headers_of_any_json_type_are_kept() {
    let server = TestServer::start().await;
    let headers = json!({"retry_count": 0, "priority": "high", "tags": ["a"], "nested": {"x": true}});
    let (_, body) = server
        .post("/message-queue/publish", json!({"queue": "q", "message": 42, "headers": headers, "persistent": false}))
        .await;
    assert_eq!(body["persistent"], false);
    assert_eq!(body["routing_key"], serde_json::Value::Null);
    let (_, msg) = server.get(&format!("/message-queue/messages/{}", body["message_id"].as_str().unwrap())).await;
    assert_eq!(msg["headers"], headers);
    assert_eq!(msg["message"], 42);
    assert_eq!(msg["persistent"], false);
}
