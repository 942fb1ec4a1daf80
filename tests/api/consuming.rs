//! Consumption over HTTP: leases, acknowledgements, requeues, rejects,
//! delivery limits, TTL, dead-lettering, long polls and consumer limits.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

async fn consume(server: &TestServer, topic: &str, group: &str, consumer: &str, extra: Value) -> Vec<Value> {
    let mut body = json!({"topic": topic, "group_id": group, "consumer_id": consumer, "max_messages": 10});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    let (status, answer) = server.post("/api/v1/messages/consume", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["count"].as_u64().unwrap() as usize, answer["messages"].as_array().unwrap().len());
    answer["messages"].as_array().unwrap().clone()
}

async fn ack(server: &TestServer, topic: &str, group: &str, id: &str) -> (StatusCode, Value) {
    server
        .post(
            "/api/v1/messages/acknowledge",
            json!({"message_id": id, "topic": topic, "success": true, "group_id": group}),
        )
        .await
}

#[tokio::test]
async fn a_message_goes_once_to_each_group_and_acks_finish_it() {
    let server = TestServer::start().await;
    let id = server.publish("orders", json!({"n": 1})).await;
    for group in ["billing", "shipping"] {
        let got = consume(&server, "orders", group, "c1", json!({})).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0]["message_id"].as_str().unwrap(), got[0]["content"].as_str().unwrap()),
            (id.as_str(), r#"{"n":1}"#)
        );
        assert_eq!(got[0]["delivery_count"], 1);
        assert_eq!(got[0]["receipt_handle"], format!("{id}.1"));
        assert!(consume(&server, "orders", group, "c2", json!({})).await.is_empty(), "the lease holds in {group}");
    }
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["status"], "delivered");
    assert_rfc3339(&msg["consumed_at"]);
    assert_eq!(msg["deliveries"].as_array().unwrap().len(), 2);
    let (status, first) = ack(&server, "orders", "billing", &id).await;
    assert_eq!((status, first["status"].as_str().unwrap()), (StatusCode::OK, "acknowledged"));
    let (status, again) = ack(&server, "orders", "billing", &id).await;
    assert_eq!(status, StatusCode::OK, "acknowledging twice is idempotent");
    assert_eq!(again["acknowledged_at"], first["acknowledged_at"]);
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["status"], "acknowledged", "the furthest state across groups");
    assert_rfc3339(&msg["acknowledged_at"]);
    let (status, answer) = ack(&server, "orders", "marketing", &id).await;
    assert_error(status, &answer, 409, "not_delivered");
    let (status, answer) = ack(&server, "other-topic", "billing", &id).await;
    assert_error(status, &answer, 404, "message_not_found");
    let (_, queue) = server.get("/message-queue/queues/orders").await;
    assert_eq!(queue["statistics"]["messages_consumed"], 2);
    assert_eq!(queue["statistics"]["messages_acknowledged"], 1);
    assert_eq!((queue["message_count"].as_u64(), queue["messages_unacknowledged"].as_u64()), (Some(1), Some(1)));
    assert!(queue["consumer_count"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn competing_consumers_never_hold_one_message_together() {
    let server = std::sync::Arc::new(TestServer::start().await);
    for n in 0..40 {
        server.publish("work", json!({"n": n})).await;
    }
    let tasks: Vec<_> = (0..4)
        .map(|c| {
            let server = server.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = consume(&server, "work", "g", &format!("c{c}"), json!({"max_messages": 3})).await;
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.iter().map(|m| m["message_id"].as_str().unwrap().to_owned()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (40, 40));
}

#[tokio::test]
async fn a_long_poll_wakes_on_publish_and_ends_empty_at_its_timeout() {
    let server = std::sync::Arc::new(TestServer::start().await);
    server.put("/message-queue/queues/quiet", json!({})).await;
    let started = Instant::now();
    assert!(consume(&server, "quiet", "g", "c", json!({"timeout": "300ms"})).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(280));
    let waiter = {
        let server = server.clone();
        tokio::spawn(async move { consume(&server, "quiet", "g", "c", json!({"timeout": "5000000000"})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.publish("quiet", json!({"wake": true})).await;
    assert_eq!(waiter.await.unwrap().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(3), "woken by the publish, not the timeout");
    let (status, answer) =
        server.post("/api/v1/messages/consume", json!({"topic": "nope", "group_id": "g", "consumer_id": "c"})).await;
    assert_error(status, &answer, 404, "topic_not_found");
}

#[tokio::test]
async fn a_lapsed_lease_is_redelivered_and_a_stale_receipt_refused() {
    let server = TestServer::start().await;
    let id = server.publish("jobs", json!({"n": 1})).await;
    let first = consume(&server, "jobs", "g", "slow", json!({"visibility_timeout": "300ms"})).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = consume(&server, "jobs", "g", "fast", json!({})).await;
    assert_eq!((second[0]["message_id"].as_str(), second[0]["delivery_count"].as_u64()), (Some(id.as_str()), Some(2)));
    let stale = json!({"message_id": id, "topic": "jobs", "success": true, "group_id": "g", "receipt_handle": first[0]["receipt_handle"]});
    let (status, answer) = server.post("/api/v1/messages/acknowledge", stale).await;
    assert_error(status, &answer, 409, "lease_expired");
    let (_, queue) = server.get("/message-queue/queues/jobs").await;
    assert_eq!(queue["statistics"]["messages_redelivered"], 1);
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["redelivery_count"], 1);
}

#[tokio::test]
async fn negative_acks_and_requeues_come_back_with_counts() {
    let server = TestServer::start().await;
    let id = server.publish("retry", json!({"n": 1})).await;
    consume(&server, "retry", "g", "c", json!({})).await;
    let nack = json!({"message_id": id, "topic": "retry", "success": false, "group_id": "g"});
    let (status, answer) = server.post("/api/v1/messages/acknowledge", nack).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("requeued")));
    let again = consume(&server, "retry", "g", "c", json!({})).await;
    assert_eq!((again[0]["delivery_count"].as_u64(), again[0]["retry_count"].as_u64()), (Some(2), Some(1)));
    let reject = json!({"rejected_by": "delivery-service", "reason": "Invalid message format", "requeue": true, "retry_count": 1});
    let (status, answer) = server.post(&format!("/message-queue/messages/{id}/reject"), reject).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for (field, want) in [
        ("message_id", json!(id)),
        ("rejected", json!(true)),
        ("rejected_by", json!("delivery-service")),
        ("reason", json!("Invalid message format")),
        ("requeued", json!(true)),
        ("retry_count", json!(2)),
    ] {
        assert_eq!(answer[field], want, "{field}");
    }
    assert_rfc3339(&answer["rejected_at"]);
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!((msg["status"].as_str(), msg["retry_count"].as_u64()), (Some("requeued"), Some(2)));
    consume(&server, "retry", "g", "c", json!({})).await;
    let delayed = json!({"requeue": true, "delay_ms": 400});
    server.post(&format!("/message-queue/messages/{id}/reject"), delayed).await;
    assert!(consume(&server, "retry", "g", "c", json!({})).await.is_empty(), "the delay holds");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(consume(&server, "retry", "g", "c", json!({})).await.len(), 1);
}

#[tokio::test]
async fn spec000_acknowledge_example_echoes_every_field() {
    let server = TestServer::start().await;
    let id = server.publish("delivery.events", json!({"n": 1})).await;
    let (status, answer) =
        server.post(&format!("/message-queue/messages/{id}/acknowledge"), json!({"success": true})).await;
    assert_error(status, &answer, 409, "not_delivered");
    consume(&server, "delivery.events", "g", "c", json!({})).await;
    let body = json!({"acknowledged_by": "delivery-service", "processing_time": 5000, "success": true, "notes": "Message processed successfully"});
    let (status, answer) = server.post(&format!("/message-queue/messages/{id}/acknowledge"), body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message_id"], id.as_str());
    assert_eq!(answer["acknowledged"], true);
    for field in ["acknowledged_by", "processing_time", "success", "notes"] {
        assert_eq!(answer[field], body[field], "{field}");
    }
    assert_rfc3339(&answer["acknowledged_at"]);
    let second = server.publish("delivery.events", json!({"n": 2})).await;
    consume(&server, "delivery.events", "g", "c", json!({})).await;
    consume(&server, "delivery.events", "h", "c", json!({})).await;
    let (status, answer) = server.post(&format!("/message-queue/messages/{second}/acknowledge"), json!({})).await;
    assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], "group_id");
    let both = json!({"group_id": "g", "subscription_id": "sub_x"});
    let (status, _) = server.post(&format!("/message-queue/messages/{second}/acknowledge"), both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        server.post(&format!("/message-queue/messages/{second}/acknowledge"), json!({"group_id": "h"})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rejects_delivery_limits_and_ttl_dead_letter_with_their_reason() {
    let server = TestServer::start().await;
    let args =
        json!({"arguments": {"x-dead-letter-queue": "risky.dlq", "x-delivery-limit": 2, "x-message-ttl": 60000}});
    server.put("/message-queue/queues/risky", args).await;
    let rejected = server.publish("risky", json!({"n": 1})).await;
    consume(&server, "risky", "g", "c", json!({})).await;
    let (_, answer) = server
        .post(&format!("/message-queue/messages/{rejected}/reject"), json!({"requeue": false, "reason": "bad"}))
        .await;
    assert_eq!((answer["dead_lettered"].as_bool(), answer["status"].as_str()), (Some(true), Some("dead_lettered")));
    let (status, answer) = ack(&server, "risky", "g", &rejected).await;
    assert_eq!(assert_error(status, &answer, 409, "already_settled")["state"], "dead_lettered");
    let limited = server.publish("risky", json!({"n": 2})).await;
    for _ in 0..2 {
        assert_eq!(consume(&server, "risky", "g", "c", json!({"visibility_timeout": "150ms"})).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(consume(&server, "risky", "g", "c", json!({})).await.is_empty());
    let expired =
        server.post("/message-queue/publish", json!({"queue": "risky", "message": {"n": 3}, "ttl": 1})).await.1;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(consume(&server, "risky", "g", "c", json!({})).await.is_empty());
    let dead = consume(&server, "risky.dlq", "audit", "x", json!({})).await;
    let reasons: Vec<(String, String)> = dead
        .iter()
        .map(|m| {
            (
                m["headers"]["x-original-message-id"].as_str().unwrap().to_owned(),
                m["headers"]["x-dead-letter-reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expired_id = expired["message_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reasons,
        vec![(rejected, "rejected".into()), (limited, "delivery_limit".into()), (expired_id, "expired".into())]
    );
    let (_, queue) = server.get("/message-queue/queues/risky").await;
    let stats = &queue["statistics"];
    assert_eq!(
        (
            stats["messages_dead_lettered"].as_u64(),
            stats["messages_rejected"].as_u64(),
            stats["messages_expired"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
}

#[tokio::test]
async fn extending_keeps_the_lease_and_a_lapsed_one_cannot_be_extended() {
    let server = TestServer::start().await;
    let id = server.publish("long", json!({"n": 1})).await;
    let got = consume(&server, "long", "g", "c", json!({"visibility_timeout": "300ms"})).await;
    let extend = json!({"message_id": id, "topic": "long", "group_id": "g", "visibility_timeout": "2s"});
    let (status, answer) = server.post("/api/v1/messages/extend", extend.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["lease_expires_at"].as_str() > got[0]["lease_expires_at"].as_str());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(consume(&server, "long", "g", "other", json!({})).await.is_empty());
    let short = json!({"message_id": id, "topic": "long", "group_id": "g", "visibility_timeout": "100ms"});
    server.post("/api/v1/messages/extend", short).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, answer) = server.post("/api/v1/messages/extend", extend).await;
    assert_error(status, &answer, 409, "lease_expired");
}

#[tokio::test]
async fn a_registered_consumer_keeps_to_its_limits() {
    let server = TestServer::start().await;
    for n in 0..12 {
        server.publish("limited", json!({"n": n})).await;
    }
    let reg =
        json!({"consumer_id": "c", "group_id": "g", "topics": ["limited"], "max_concurrency": 2, "rate_limit": 100});
    let (status, answer) = server.post("/api/v1/consumers", reg.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    for field in ["consumer_id", "group_id", "topics", "max_concurrency", "rate_limit"] {
        assert_eq!(answer[field], reg[field], "{field}");
    }
    assert_eq!(consume(&server, "limited", "g", "c", json!({})).await.len(), 2);
    let body = json!({"topic": "limited", "group_id": "g", "consumer_id": "c", "max_messages": 10});
    let (status, answer) = server.post("/api/v1/messages/consume", body.clone()).await;
    assert_error(status, &answer, 429, "rate_limit_exceeded");
    assert_eq!(consume(&server, "limited", "g", "free", json!({})).await.len(), 10, "unregistered consumers are free");
    let rated = json!({"consumer_id": "r", "group_id": "h", "topics": ["limited"], "rate_limit": 3});
    server.post("/api/v1/consumers", rated).await;
    assert_eq!(consume(&server, "limited", "h", "r", json!({})).await.len(), 3);
    let (status, _) =
        server.post("/api/v1/messages/consume", json!({"topic": "limited", "group_id": "h", "consumer_id": "r"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    server.put("/message-queue/queues/elsewhere", json!({})).await;
    let (status, answer) = server
        .post("/api/v1/messages/consume", json!({"topic": "elsewhere", "group_id": "g", "consumer_id": "c"}))
        .await;
    assert_error(status, &answer, 403, "forbidden");
    for (bad, field) in [
        (json!({"topics": []}), "topics"),
        (json!({"max_concurrency": 0}), "max_concurrency"),
        (json!({"rate_limit": 0}), "rate_limit"),
    ] {
        let mut body = json!({"consumer_id": "z", "group_id": "g", "topics": ["limited"]});
        body.as_object_mut().unwrap().extend(bad.as_object().cloned().unwrap());
        let (status, answer) = server.post("/api/v1/consumers", body).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], field);
    }
}

#[tokio::test]
async fn batches_publish_and_acknowledge_each_item_on_its_own() {
    let server = TestServer::start().await;
    let items = json!([{"topic": "b", "content": "one"}, {"topic": "b", "content": 5}, {"topic": "b", "content": "two", "key": "k"}]);
    let (status, answer) = server.post("/api/v1/messages/batch", json!({"messages": items})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["succeeded"].as_u64(), answer["failed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(answer["results"][1]["status"], 400);
    assert_eq!(answer["results"][1]["details"]["field"], "content");
    let got = consume(&server, "b", "g", "c", json!({})).await;
    let acks: Vec<Value> =
        got.iter().map(|m| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]})).collect();
    let mut acks_with_unknown = acks.clone();
    acks_with_unknown.push(json!({"message_id": "msg_123456789"}));
    let body = json!({"messages": acks_with_unknown, "topic": "b", "success": true, "group_id": "g"});
    let (status, answer) = server.post("/api/v1/messages/acknowledge", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["succeeded"].as_u64(), answer["failed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(answer["results"][2]["error"], "message_not_found");
    let (_, queue) = server.get("/message-queue/queues/b").await;
    assert_eq!(queue["message_count"], 0);
}
