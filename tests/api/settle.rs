//! Settling deliveries: `/api/v1/messages/acknowledge` (one message or a batch, positive or negative),
//! spec 000's acknowledge, spec 000's reject with requeue (at once or delayed), the message's status
//! through its life, and the queue statistics settlements leave. Settlements that end a message for
//! good (rejects without requeue, delivery limits, TTL) are in `dead_letters`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    consume::{assert_fields, consume, ids, millis, publish_n},
    helpers::*,
};

/// `POST /api/v1/messages/acknowledge` for one message; `extra` adds or overrides fields.
async fn ack(server: &TestServer, topic: &str, group: &str, id: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"message_id": id, "topic": topic, "success": true, "group_id": group});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    server.post("/api/v1/messages/acknowledge", body).await
}

/// `POST /message-queue/messages/{id}/{action}` (spec 000's acknowledge or reject).
pub(super) async fn spec(server: &TestServer, id: &str, action: &str, body: Value) -> (StatusCode, Value) {
    server.post(&format!("/message-queue/messages/{id}/{action}"), body).await
}

/// `GET /message-queue/messages/{id}`, asserting a 200.
pub(super) async fn message(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn acknowledging_finishes_the_message_for_that_group_only() {
    let server = TestServer::start().await;
    let id = server.publish("orders", json!({"n": 1})).await;
    for group in ["billing", "shipping"] {
        consume(&server, "orders", group, "c", json!({})).await;
    }
    let msg = message(&server, &id).await;
    assert_eq!((&msg["status"], msg["deliveries"].as_array().unwrap().len()), (&json!("delivered"), 2), "{msg}");
    assert_rfc3339(&msg["consumed_at"]);
    let (status, answer) = ack(&server, "orders", "billing", &id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let want = json!({"message_id": id, "topic": "orders", "group_id": "billing", "success": true, "status": "acknowledged", "delivery_count": 1});
    assert_fields(&answer, want);
    assert_rfc3339(&answer["acknowledged_at"]);
    let msg = message(&server, &id).await;
    assert_fields(&msg, json!({"status": "acknowledged", "acknowledged_at": answer["acknowledged_at"]}));
    let states: Vec<(&str, &str)> = msg["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["group"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("billing", "acknowledged"), ("shipping", "delivered")], "acknowledged beats delivered");
    let (_, queue) = server.get("/message-queue/queues/orders").await;
    assert_fields(&queue, json!({"message_count": 1, "messages_unacknowledged": 1}));
    assert_fields(&queue["statistics"], json!({"messages_consumed": 2, "messages_acknowledged": 1}));
    assert!(consume(&server, "orders", "billing", "c", json!({})).await.is_empty(), "billing is done with it");
}

#[tokio::test]
async fn acknowledging_twice_answers_the_first_acknowledgement() {
    let server = TestServer::start().await;
    let id = server.publish("twice", json!({"n": 1})).await;
    consume(&server, "twice", "g", "c", json!({})).await;
    let (_, first) = ack(&server, "twice", "g", &id, json!({})).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, again) = ack(&server, "twice", "g", &id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_fields(&again, json!({"status": "acknowledged", "acknowledged_at": first["acknowledged_at"]}));
    let (_, queue) = server.get("/message-queue/queues/twice").await;
    assert_eq!(queue["statistics"]["messages_acknowledged"], 1);
}

#[tokio::test]
async fn a_negative_acknowledgement_hands_the_message_out_again_at_once_and_counts_a_retry() {
    let server = TestServer::start().await;
    let id = server.publish("retry", json!({"n": 1})).await;
    consume(&server, "retry", "g", "c", json!({})).await;
    let (status, answer) = ack(&server, "retry", "g", &id, json!({"success": false})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, json!({"status": "requeued", "success": false}));
    let again = consume(&server, "retry", "g", "other", json!({})).await;
    let want = json!({"message_id": id, "delivery_count": 2, "retry_count": 1, "receipt_handle": format!("{id}.2")});
    assert_fields(&again[0], want);
    // A requeuing reject counts on from there, whatever retry count its body names.
    let (status, answer) = spec(&server, &id, "reject", json!({"requeue": true, "retry_count": 1})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, json!({"requeued": true, "retry_count": 2}));
    assert_fields(&message(&server, &id).await, json!({"status": "requeued", "retry_count": 2}));
}

#[tokio::test]
async fn acknowledgements_naming_the_wrong_message_or_group_are_refused() {
    let server = TestServer::start().await;
    let [id, other] = <[String; 2]>::try_from(publish_n(&server, "orders", 2).await).unwrap();
    let gone = server.publish("gone", json!({"n": 1})).await;
    // tansu deletes every topic with one (docs/kafka.md): there the case is left out.
    let deleting = !log_on_tansu();
    if deleting {
        server.call(reqwest::Method::DELETE, "/message-queue/queues/gone", None).await;
    }
    consume(&server, "orders", "g", "c", json!({})).await;
    let other_receipt = json!({"receipt_handle": format!("{other}.1")});
    // (case, message id, topic, group, extra fields, status, code)
    let cases = [
        ("another group", id.as_str(), "orders", "marketing", json!({}), 409, "not_delivered"),
        ("another topic", &id, "invoices", "g", json!({}), 404, "message_not_found"),
        ("a malformed id", "msg_123456789", "orders", "g", json!({}), 404, "message_not_found"),
        ("a deleted queue's id", &gone, "gone", "g", json!({}), 404, "message_not_found"),
        ("another message's receipt", &id, "orders", "g", other_receipt, 400, "invalid_request"),
        ("a forged receipt", &id, "orders", "g", json!({"receipt_handle": "abc"}), 400, "invalid_request"),
    ];
    for (case, message_id, topic, group, extra, want_status, want_code) in cases {
        if case == "a deleted queue's id" && !deleting {
            continue;
        }
        let (status, answer) = ack(&server, topic, group, message_id, extra).await;
        assert_eq!((status.as_u16(), answer["error"].as_str()), (want_status, Some(want_code)), "{case}: {answer}");
        assert_error(status, &answer, want_status, want_code);
    }
    assert_eq!(message(&server, &id).await["status"], "delivered", "nothing changed");
}

#[tokio::test]
async fn a_stale_receipt_is_refused_once_the_message_went_out_again() {
    let server = TestServer::start().await;
    let id = server.publish("jobs", json!({"n": 1})).await;
    let first = consume(&server, "jobs", "g", "slow", json!({"visibility_timeout": "200ms"})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = consume(&server, "jobs", "g", "fast", json!({})).await;
    let (status, answer) = ack(&server, "jobs", "g", &id, json!({"receipt_handle": first[0]["receipt_handle"]})).await;
    let details = assert_error(status, &answer, 409, "lease_expired");
    assert_fields(&details, json!({"message_id": id, "group": "g", "state": "leased"}));
    let (status, answer) = ack(&server, "jobs", "g", &id, json!({"receipt_handle": second[0]["receipt_handle"]})).await;
    assert_eq!((status, &answer["delivery_count"]), (StatusCode::OK, &json!(2)), "{answer}");
}

#[tokio::test]
async fn an_acknowledgement_after_the_lease_lapsed_but_before_redelivery_succeeds() {
    let server = TestServer::start().await;
    let id = server.publish("late", json!({"n": 1})).await;
    consume(&server, "late", "g", "c", json!({"visibility_timeout": "200ms"})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, answer) = ack(&server, "late", "g", &id, json!({})).await;
    assert_eq!((status, &answer["status"]), (StatusCode::OK, &json!("acknowledged")), "{answer}");
    assert!(consume(&server, "late", "g", "c", json!({})).await.is_empty(), "finished, not redelivered");
}

#[tokio::test]
async fn the_spec_acknowledge_example_echoes_every_field() {
    let server = TestServer::start().await;
    let id = server.publish("delivery.events", json!({"n": 1})).await;
    let example = json!({"acknowledged_by": "delivery-service", "processing_time": 5000, "success": true, "notes": "Message processed successfully"});
    let (status, answer) = spec(&server, &id, "acknowledge", example.clone()).await;
    assert_error(status, &answer, 409, "not_delivered");
    consume(&server, "delivery.events", "g", "c", json!({})).await;
    let (status, answer) = spec(&server, &id, "acknowledge", example.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, example);
    assert_fields(&answer, json!({"message_id": id, "acknowledged": true, "group": "g", "status": "acknowledged"}));
    assert_rfc3339(&answer["acknowledged_at"]);
    assert_eq!(message(&server, &id).await["acknowledged_at"], answer["acknowledged_at"]);
}

#[tokio::test]
async fn a_spec_acknowledgement_without_a_group_needs_exactly_one_holder() {
    let server = TestServer::start().await;
    let id = server.publish("shared", json!({"n": 1})).await;
    for group in ["g", "h"] {
        consume(&server, "shared", group, "c", json!({})).await;
    }
    for body in [json!({}), json!({"success": true})] {
        let (status, answer) = spec(&server, &id, "acknowledge", body).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], "group_id");
    }
    let (status, answer) =
        spec(&server, &id, "acknowledge", json!({"group_id": "g", "subscription_id": "sub_x"})).await;
    assert_error(status, &answer, 400, "invalid_request");
    let (status, answer) = spec(&server, &id, "acknowledge", json!({"group_id": "h"})).await;
    assert_eq!((status, &answer["group"]), (StatusCode::OK, &json!("h")), "{answer}");
    let (status, answer) = spec(&server, &id, "acknowledge", json!({})).await;
    assert_eq!((status, &answer["group"]), (StatusCode::OK, &json!("g")), "only g still holds it: {answer}");
}

#[tokio::test]
async fn the_spec_reject_example_requeues_the_message() {
    let server = TestServer::start().await;
    let id = server.publish("delivery.events", json!({"n": 1})).await;
    consume(&server, "delivery.events", "g", "c", json!({})).await;
    let example = json!({"rejected_by": "delivery-service", "reason": "Invalid message format", "requeue": true, "retry_count": 1});
    let (status, answer) = spec(&server, &id, "reject", example).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(
        &answer,
        json!({
            "message_id": id, "rejected": true, "rejected_by": "delivery-service", "reason": "Invalid message format",
            "requeued": true, "retry_count": 1, "dead_lettered": false, "group": "g", "status": "requeued",
        }),
    );
    assert_rfc3339(&answer["rejected_at"]);
    let again = consume(&server, "delivery.events", "g", "c", json!({})).await;
    assert_fields(&again[0], json!({"message_id": id, "delivery_count": 2, "retry_count": 1}));
}

#[tokio::test]
async fn a_delayed_requeue_keeps_the_message_away_for_the_delay() {
    let server = TestServer::start().await;
    let id = server.publish("later", json!({"n": 1})).await;
    consume(&server, "later", "g", "c", json!({})).await;
    let (status, answer) = spec(&server, &id, "reject", json!({"requeue": false, "delay_ms": 400})).await;
    assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], "delay_ms");
    let (status, answer) = spec(&server, &id, "reject", json!({"requeue": true, "delay_ms": 400})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(millis(&answer["available_at"]) - millis(&answer["rejected_at"]), 400, "{answer}");
    assert!(consume(&server, "later", "g", "c", json!({})).await.is_empty(), "the delay holds");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ids(&consume(&server, "later", "g", "c", json!({})).await), [id]);
}

#[tokio::test]
async fn a_batch_is_published_and_acknowledged_item_by_item() {
    let server = TestServer::start().await;
    let items = json!([{"topic": "b", "content": "one"}, {"topic": "b", "content": 5}, {"topic": "b", "content": "two", "key": "k"}]);
    let (status, answer) = server.post("/api/v1/messages/batch", json!({"messages": items})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, json!({"succeeded": 2, "failed": 1}));
    assert_eq!(answer["results"][1]["status"], 400);
    assert_eq!(answer["results"][1]["details"]["field"], "content");
    let got = consume(&server, "b", "g", "c", json!({})).await;
    let mut acks: Vec<Value> =
        got.iter().map(|m| json!({"message_id": m["message_id"], "receipt_handle": m["receipt_handle"]})).collect();
    acks.push(json!({"message_id": "msg_123456789"}));
    let body = json!({"messages": acks, "topic": "b", "success": true, "group_id": "g"});
    let (status, answer) = server.post("/api/v1/messages/acknowledge", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_fields(&answer, json!({"succeeded": 2, "failed": 1}));
    assert_eq!(answer["results"][2]["error"], "message_not_found");
    let (_, queue) = server.get("/message-queue/queues/b").await;
    assert_eq!(queue["message_count"], 0);
}

#[tokio::test]
async fn a_message_status_follows_its_life() {
    let server = TestServer::start().await;
    let id = server.publish("life", json!({"n": 1})).await;
    assert_fields(&message(&server, &id).await, json!({"status": "published", "consumed_at": null, "deliveries": []}));
    let got = consume(&server, "life", "g", "c", json!({})).await;
    let msg = message(&server, &id).await;
    assert_eq!(msg["status"], "delivered");
    assert_rfc3339(&msg["consumed_at"]);
    assert_fields(
        &msg["deliveries"][0],
        json!({
            "group": "g", "group_type": "consumer_group", "status": "delivered", "delivery_count": 1, "retry_count": 0,
            "consumer": "c", "lease_expires_at": got[0]["lease_expires_at"],
        }),
    );
    spec(&server, &id, "reject", json!({"requeue": true})).await;
    let msg = message(&server, &id).await;
    assert_fields(&msg, json!({"status": "requeued", "retry_count": 1, "redelivery_count": 0}));
    assert_fields(&msg["deliveries"][0], json!({"status": "requeued", "consumer": null, "lease_expires_at": null}));
    consume(&server, "life", "g", "c2", json!({})).await;
    let msg = message(&server, &id).await;
    assert_fields(&msg, json!({"status": "delivered", "redelivery_count": 1, "acknowledged_at": null}));
    assert_fields(&msg["deliveries"][0], json!({"consumer": "c2", "delivery_count": 2}));
    ack(&server, "life", "g", &id, json!({})).await;
    let msg = message(&server, &id).await;
    assert_eq!(msg["status"], "acknowledged");
    assert_rfc3339(&msg["acknowledged_at"]);
    assert_fields(&msg["deliveries"][0], json!({"status": "acknowledged", "finished_at": msg["acknowledged_at"]}));
}

#[tokio::test]
async fn queue_statistics_follow_a_sequence_of_settlements() {
    let server = TestServer::start().await;
    server.put("/message-queue/queues/stats", json!({"arguments": {"x-dead-letter-queue": "stats.dlq"}})).await;
    let m = publish_n(&server, "stats", 5).await;
    let (status, brief) =
        server.post("/api/v1/messages", json!({"topic": "stats", "content": "brief", "ttl": "100ms"})).await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.post("/api/v1/consumers", json!({"consumer_id": "c3", "group_id": "g", "topics": ["stats"]})).await;
    assert_eq!(ids(&consume(&server, "stats", "g", "c1", json!({})).await), m, "the expired message is not handed out");
    ack(&server, "stats", "g", &m[0], json!({})).await;
    ack(&server, "stats", "g", &m[1], json!({"success": false})).await;
    spec(&server, &m[2], "reject", json!({"requeue": false})).await;
    spec(&server, &m[3], "reject", json!({"requeue": true})).await;
    assert_eq!(ids(&consume(&server, "stats", "g", "c2", json!({})).await), [m[1].clone(), m[3].clone()]);
    let (_, queue) = server.get("/message-queue/queues/stats").await;
    // m1, m3 and the expired one are finished; c1 and c2 consumed, c3 is registered.
    assert_fields(
        &queue,
        json!({"message_count": 3, "messages_unacknowledged": 3, "messages_ready": 0, "consumer_count": 3}),
    );
    let (_, topic) = server.get("/api/v1/topics/stats").await;
    assert_fields(&topic, json!({"consumer_count": 3, "message_count": 3}));
    // Seven deliveries: five, then two redeliveries; the expired one was never handed out.
    assert_fields(
        &queue["statistics"],
        json!({
            "messages_published": 6, "messages_consumed": 7, "messages_acknowledged": 1, "messages_rejected": 1,
            "messages_redelivered": 2, "messages_requeued": 2, "messages_dead_lettered": 2, "messages_expired": 1,
        }),
    );
    // The dead-letter queue holds what left for good in the order it left, each with its reason.
    let dead = consume(&server, "stats.dlq", "audit", "c", json!({})).await;
    let reasons: Vec<_> =
        dead.iter().map(|m| (&m["headers"]["x-original-message-id"], &m["headers"]["x-dead-letter-reason"])).collect();
    assert_eq!(reasons, [(&brief["message_id"], &json!("expired")), (&json!(m[2]), &json!("rejected"))]);
}
