//! Messages that leave a queue for good: rejected without requeue, over their delivery limit, or past
//! their TTL. Each goes to the queue's dead-letter queue with its reason, or is dropped when there is
//! none, and is settled for every later acknowledgement.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{
    consume::{assert_fields, consume},
    helpers::*,
    settle::{message, spec},
};

#[tokio::test]
async fn rejecting_without_requeue_dead_letters_or_drops_the_message_and_settles_it() {
    let server = TestServer::start().await;
    // (queue, its dead-letter queue, the message's status after the reject)
    let cases = [("with.dlq", Some("with.dlq.dead"), "dead_lettered"), ("without.dlq", None, "rejected")];
    for (queue, dlq, want) in cases {
        let arguments = dlq.map_or(json!({}), |d| json!({"x-dead-letter-queue": d}));
        server.put(&format!("/message-queue/queues/{queue}"), json!({"arguments": arguments})).await;
        let id = server.publish(queue, json!({"n": 1})).await;
        consume(&server, queue, "g", "c", json!({})).await;
        let body = json!({"rejected_by": "svc", "reason": "bad payload", "requeue": false});
        let (status, answer) = spec(&server, &id, "reject", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_fields(&answer, json!({"requeued": false, "dead_lettered": dlq.is_some(), "status": want}));
        assert_eq!(message(&server, &id).await["status"], want, "{queue}");
        let ack = json!({"message_id": id, "topic": queue, "success": true, "group_id": "g"});
        let (status, answer) = server.post("/api/v1/messages/acknowledge", ack).await;
        assert_fields(&assert_error(status, &answer, 409, "already_settled"), json!({"state": want, "group": "g"}));
        let (status, answer) = spec(&server, &id, "acknowledge", json!({"group_id": "g"})).await;
        assert_eq!(assert_error(status, &answer, 409, "already_settled")["state"], want, "{queue}");
        assert!(consume(&server, queue, "g", "c", json!({})).await.is_empty(), "{queue}");
        let (_, status) = server.get(&format!("/message-queue/queues/{queue}")).await;
        assert_eq!(status["message_count"], 0, "{queue}");
        let want = json!({"messages_rejected": 1, "messages_dead_lettered": u64::from(dlq.is_some())});
        assert_fields(&status["statistics"], want);
        if let Some(dlq) = dlq {
            let dead = consume(&server, dlq, "audit", "c", json!({})).await;
            assert_eq!(dead.len(), 1);
            assert_fields(
                &dead[0]["headers"],
                json!({
                    "x-dead-letter-reason": "rejected", "x-original-message-id": id, "x-original-queue": queue,
                    "x-dead-letter-detail": "bad payload",
                }),
            );
        }
    }
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
    assert_eq!(message(&server, &id).await["status"], "dead_lettered");
    let (_, queue) = server.get("/message-queue/queues/q").await;
    assert_eq!(queue["message_count"], 0);
    let want = json!({"messages_dead_lettered": 1, "messages_consumed": 2, "messages_redelivered": 1});
    assert_fields(&queue["statistics"], want);
}

#[tokio::test]
async fn a_message_past_its_ttl_is_never_delivered_but_dead_lettered_or_dropped() {
    let server = TestServer::start().await;
    // (queue, its arguments, the publish's own ttl, the dead-letter queue if any)
    let cases = [
        ("ttl.queue", json!({"x-message-ttl": 100, "x-dead-letter-queue": "ttl.dlq"}), None, Some("ttl.dlq")),
        ("ttl.dropped", json!({"x-message-ttl": 100}), None, None),
        ("ttl.own", json!({"x-dead-letter-queue": "own.dlq"}), Some(json!("100ms")), Some("own.dlq")),
        // Published through spec 000, whose ttl is in seconds and beats the queue's.
        (
            "ttl.spec000",
            json!({"x-message-ttl": 60000, "x-dead-letter-queue": "spec.dlq"}),
            Some(json!(1)),
            Some("spec.dlq"),
        ),
    ];
    let mut published = Vec::new();
    for (queue, arguments, ttl, _) in &cases {
        server.put(&format!("/message-queue/queues/{queue}"), json!({"arguments": arguments})).await;
        let spec000 = *queue == "ttl.spec000";
        let (status, answer) = if spec000 {
            server.post("/message-queue/publish", json!({"queue": queue, "message": {"n": 3}, "ttl": ttl})).await
        } else {
            server.post("/api/v1/messages", json!({"topic": queue, "content": "late", "ttl": ttl})).await
        };
        assert_eq!(status, if spec000 { StatusCode::OK } else { StatusCode::CREATED }, "{answer}");
        published.push(answer["message_id"].clone());
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut consumed = Vec::new();
    for ((queue, _, _, dlq), id) in cases.iter().zip(published) {
        assert!(consume(&server, queue, "g", "c", json!({})).await.is_empty(), "{queue}");
        if let Some(dlq) = dlq {
            let dead = consume(&server, dlq, "audit", "c", json!({})).await;
            assert_eq!(dead.len(), 1, "{queue}");
            assert_fields(&dead[0]["headers"], json!({"x-dead-letter-reason": "expired", "x-original-message-id": id}));
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
async fn a_queues_newest_messages_are_read_without_delivering_them() {
    let server = TestServer::start().await;
    let arguments = json!({"partitions": 2});
    assert_eq!(server.put("/message-queue/queues/peeked", arguments).await.0, StatusCode::CREATED);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.publish("peeked", json!({"n": i})).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (status, peek) = server.get("/message-queue/queues/peeked/messages?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{peek}");
    let got: Vec<&str> = peek["messages"].as_array().unwrap().iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    let newest: Vec<&str> = ids.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(got, newest, "newest first, across partitions: {peek}");
    assert_fields(&peek["messages"][0], json!({"message": {"n": 4}, "headers": {}}));
    // Nothing was delivered: a consumer still gets all five.
    assert_eq!(consume(&server, "peeked", "g", "c", json!({"max_messages": 10})).await.len(), 5);
    for bad in ["0", "101"] {
        let (status, body) = server.get(&format!("/message-queue/queues/peeked/messages?limit={bad}")).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) = server.get("/message-queue/queues/nowhere/messages").await;
    assert_error(status, &body, 404, "queue_not_found");
}
