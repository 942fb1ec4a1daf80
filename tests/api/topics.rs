//! `/api/v1/topics`: creation, conflicts and info.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn creating_a_topic_twice_is_a_conflict() {
    let server = TestServer::start().await;
    let (status, _) = server.post("/api/v1/topics", json!({"name": "dup"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = server.post("/api/v1/topics", json!({"name": "dup", "partitions": 4})).await;
    assert_eq!(assert_error(status, &body, 409, "topic_exists")["topic"], "dup");
    let (_, topic) = server.get("/api/v1/topics/dup").await;
    assert_eq!(topic["partitions"], 1, "the first declaration stands");
}

#[tokio::test]
async fn a_topic_is_the_same_object_as_a_queue() {
    let server = TestServer::start().await;
    server.post("/api/v1/topics", json!({"name": "shared.name", "partitions": 2, "retention": "1h"})).await;
    server.publish("shared.name", json!({"from": "message-queue"})).await;
    server.post("/api/v1/messages", json!({"topic": "shared.name", "content": "from v1"})).await;
    let (_, queue) = server.get("/message-queue/queues/shared.name").await;
    assert_eq!(queue["partitions"], 2);
    assert_eq!(queue["message_count"], 2);
    let (_, topic) = server.get("/api/v1/topics/shared.name").await;
    assert_eq!(topic["retention"], "3600000000000");
    assert_eq!(topic["message_count"], 2);
}

#[tokio::test]
async fn topic_defaults_come_from_configuration() {
    let server =
        TestServer::start_with(&[("MESSAGE_QUEUE_DEFAULT_PARTITIONS", "4"), ("MESSAGE_QUEUE_RETENTION", "48h")]).await;
    let (status, body) = server.post("/api/v1/topics", json!({"name": "defaults"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["partitions"], 4);
    assert_eq!(body["replication"], 1);
    assert_eq!(body["retention"], "172800000000000");
    assert_eq!(body["max_size"], serde_json::Value::Null);
}
