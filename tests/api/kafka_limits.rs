//! What the brokers refuse although the service takes it: a message under the service's own
//! limit (`MESSAGE_QUEUE_MAX_SIZE`, 1 MiB) but over the producer's `message.max.bytes`
//! (librdkafka's 1,000,000 bytes unless `KAFKA_SETTINGS` says otherwise) is a 400, not a 500,
//! and nothing of it is written.

use serde_json::json;

use super::helpers::{kafka::Topics, *};

#[tokio::test]
async fn a_message_larger_than_the_brokers_take_is_a_400_and_is_not_written() {
    let server = TestServer::start().await;
    let (status, body) = server.post("/api/v1/topics", json!({"name": "big", "partitions": 1})).await;
    assert_eq!(status, 201, "{body}");
    let large = "x".repeat(1_000_100);
    let (status, body) = server.post("/message-queue/publish", json!({"queue": "big", "message": large})).await;
    let details = assert_error(status, &body, 400, "invalid_message");
    assert_eq!(details["field"], "message", "{body}");
    let (status, body) = server.post("/api/v1/messages", json!({"topic": "big", "content": large})).await;
    assert_error(status, &body, 400, "invalid_message");

    // A message the brokers take still goes through, and is the only one there.
    server.publish("big", json!("small")).await;
    let (status, body) = server.get("/api/v1/topics/big").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message_count"], 1, "{body}");
}

/// Apache Kafka refuses a replication factor above its brokers' count (INVALID_REPLICATION_FACTOR);
/// tansu 0.6 takes any (docs/kafka.md), so there the topic is made.
#[tokio::test]
async fn a_topic_the_brokers_cannot_make_is_a_400_and_is_not_declared_where_the_broker_can() {
    let server = TestServer::start().await;
    let (status, body) = server.post("/api/v1/topics", json!({"name": "copies", "replication": 3})).await;
    if log_on_tansu() {
        assert_eq!(status, 201, "tansu refuses three copies on one broker now: {body}");
        return;
    }
    let details = assert_error(status, &body, 400, "invalid_request");
    assert_eq!(details["field"], "replication", "{body}");
    let (status, body) = server.get("/api/v1/topics/copies").await;
    assert_eq!(status, 404, "the refused topic is not declared: {body}");
    let (status, body) = server.post("/api/v1/topics", json!({"name": "copies", "replication": 1})).await;
    assert_eq!(status, 201, "the same name is free for a topic the brokers can make: {body}");
}

#[tokio::test]
async fn a_topic_declared_while_the_brokers_are_down_is_a_503_and_can_be_declared_again() {
    let topics = Topics::own();
    let env = [
        ("KAFKA_BROKERS", topics.brokers.as_str()),
        ("KAFKA_TOPIC_PREFIX", topics.prefix.as_str()),
        ("KAFKA_TIMEOUT", "1s"),
    ];
    let server = TestServer::start_with(&env).await;
    topics.broker("kill");
    let (status, body) = server.post("/api/v1/topics", json!({"name": "later", "partitions": 2})).await;
    assert_error(status, &body, 503, "service_unavailable");
    let (status, body) = server.get("/api/v1/topics/later").await;
    assert_eq!(status, 404, "a topic whose log could not be made is not declared: {body}");
    topics.broker("start");
    let (status, body) = server.post("/api/v1/topics", json!({"name": "later", "partitions": 2})).await;
    assert_eq!(status, 201, "declared again once the brokers are back: {body}");
    server.publish("later", json!("first")).await;
}
