//! Queue management: declare, reconfigure, list, delete.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn put_creates_then_reconfigures_a_queue() {
    let server = TestServer::start().await;
    let decl = json!({
        "durable": true, "auto_delete": false, "exclusive": false,
        "arguments": {"x-message-ttl": 3600000, "x-max-length": 10000, "x-dead-letter-queue": "orders.dlq"}
    });
    let (status, body) = server.put("/message-queue/queues/orders", decl.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["queue"], "orders");
    assert_eq!(body["arguments"], decl["arguments"]);
    assert_eq!(body["durable"], true);

    let (status, body) = server
        .put("/message-queue/queues/orders", json!({"auto_delete": true, "arguments": {"x-max-length": 5}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auto_delete"], true);
    assert_eq!(body["arguments"], json!({"x-max-length": 5}));
    let (_, read) = server.get("/message-queue/queues/orders").await;
    assert_eq!(read["arguments"], json!({"x-max-length": 5}));
    assert_eq!(read["auto_delete"], true);
}

#[tokio::test]
async fn arguments_the_service_does_not_understand_are_refused() {
    let server = TestServer::start().await;
    let cases = [
        (json!({"x-foo": 1}), "arguments.x-foo"),
        (json!({"x-message-ttl": "soon"}), "arguments.x-message-ttl"),
        (json!({"x-max-length": -1}), "arguments.x-max-length"),
        (json!({"x-dead-letter-queue": "no spaces"}), "arguments.x-dead-letter-queue"),
    ];
    for (arguments, field) in cases {
        let (status, body) = server.put("/message-queue/queues/q", json!({"arguments": arguments})).await;
        assert_eq!(assert_error(status, &body, 400, "invalid_request")["field"], field);
    }
    let (status, _) = server.get("/message-queue/queues/q").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused declaration creates nothing");
}

#[tokio::test]
async fn list_shows_every_queue_by_name() {
    let server = TestServer::start().await;
    for name in ["b.queue", "a.queue"] {
        server.put(&format!("/message-queue/queues/{name}"), json!({})).await;
    }
    server.publish("c.queue", json!({"x": 1})).await;
    let (status, body) = server.get("/message-queue/queues").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 3);
    let names: Vec<&str> = body["queues"].as_array().unwrap().iter().map(|q| q["queue"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.queue", "b.queue", "c.queue"]);
    assert_eq!(body["queues"][2]["message_count"], 1);
}

#[tokio::test]
async fn delete_removes_the_queue_its_messages_and_subscriptions() {
    let server = TestServer::start().await;
    let id = server.publish("doomed", json!({"x": 1})).await;
    server
        .post("/message-queue/subscribe", json!({"queue": "doomed", "callback_url": "https://example.com/hook"}))
        .await;
    // Consuming leaves the queue in the server's queue cache; deleting must not leave it usable.
    let consume = json!({"topic": "doomed", "group_id": "g", "consumer_id": "c"});
    let (status, body) = server.post("/api/v1/messages/consume", consume.clone()).await;
    assert_eq!((status, body["messages"][0]["message_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{body}");
    let (status, _) = server.call(Method::DELETE, "/message-queue/queues/doomed", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.get("/message-queue/queues/doomed").await;
    assert_error(status, &body, 404, "queue_not_found");
    let (status, body) = server.post("/api/v1/messages/consume", consume).await;
    assert_error(status, &body, 404, "topic_not_found");
    let ack = json!({"message_id": id, "topic": "doomed", "success": true, "group_id": "g"});
    let (status, body) = server.post("/api/v1/messages/acknowledge", ack).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_error(status, &body, 404, "message_not_found");
    // A queue made again under the same name starts empty; old ids stay unknown.
    let new_id = server.publish("doomed", json!({"x": 2})).await;
    assert_ne!(new_id, id);
    let (status, _) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, queue) = server.get("/message-queue/queues/doomed").await;
    assert_eq!(queue["consumer_count"], 0);
    assert_eq!(queue["message_count"], 1);
}

#[tokio::test]
async fn a_declaration_sets_partitions_which_can_grow_but_not_shrink() {
    let server = TestServer::start().await;
    let (status, body) = server.put("/message-queue/queues/wide", json!({"partitions": 3})).await;
    assert_eq!((status, &body["partitions"]), (StatusCode::CREATED, &json!(3)), "{body}");
    let (status, body) = server.put("/message-queue/queues/wide", json!({"partitions": 2})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = server.put("/message-queue/queues/wide", json!({"partitions": 5})).await;
    if log_on_tansu() {
        // tansu cannot add partitions: the refusal is a clean conflict (docs/kafka.md).
        let details = assert_error(status, &body, 409, "conflict");
        assert!(details["reason"].as_str().unwrap().contains("UnsupportedFeature"), "{body}");
        return;
    }
    assert_eq!((status, &body["partitions"]), (StatusCode::OK, &json!(5)), "{body}");
    let (status, body) = server.put("/message-queue/queues/wide", json!({})).await;
    assert_eq!((status, &body["partitions"]), (StatusCode::OK, &json!(5)), "left out: kept");
    for key in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let (status, answer) = server
            .post("/message-queue/publish", json!({"queue": "wide", "routing_key": key, "message": {"k": key}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, topic) = server.get("/api/v1/topics/wide").await;
    assert_eq!(topic["partitions"], 5, "{topic}");
    let (status, body) = server.put("/message-queue/queues/narrow", json!({"partitions": 0})).await;
    assert_eq!(assert_error(status, &body, 400, "invalid_request")["field"], "partitions");
}
