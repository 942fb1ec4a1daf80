//! Every example body of the two specs, sent verbatim, answered field for field.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

fn spec000_publish() -> Value {
    json!({
      "queue": "delivery.events",
      "message": {
        "event_type": "delivery_created",
        "delivery_id": "550e8400-e29b-41d4-a716-446655440000",
        "trip_id": "550e8400-e29b-41d4-a716-446655440001",
        "user_id": "550e8400-e29b-41d4-a716-446655440002",
        "status": "created",
        "timestamp": "2024-01-15T12:30:00Z"
      },
      "routing_key": "delivery.created",
      "headers": {
        "content_type": "application/json",
        "priority": "high",
        "retry_count": 0
      },
      "ttl": 3600,
      "persistent": true
    })
}

fn spec000_subscribe() -> Value {
    json!({
      "queue": "delivery.events",
      "routing_key": "delivery.*",
      "callback_url": "https://api.delivery.com/delivery-service/events",
      "headers": {
        "authorization": "Bearer service_token_here",
        "content_type": "application/json"
      },
      "retry_policy": {
        "max_retries": 3,
        "retry_delay": 1000,
        "backoff_multiplier": 2
      },
      "dead_letter_queue": "delivery.events.dlq",
      "prefetch_count": 10
    })
}

#[tokio::test]
async fn spec000_publish_example_is_answered_with_every_field() {
    let server = TestServer::start().await;
    let (status, body) = server.post("/message-queue/publish", spec000_publish()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["message_id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["queue"], "delivery.events");
    assert_eq!(body["routing_key"], "delivery.created");
    assert_eq!(body["published"], true);
    assert_rfc3339(&body["published_at"]);
    assert_eq!(body["ttl"], 3600);
    assert_eq!(body["persistent"], true);
}

#[tokio::test]
async fn spec000_message_details_read_back_what_was_published() {
    let server = TestServer::start().await;
    let sent = spec000_publish();
    let (_, published) = server.post("/message-queue/publish", sent.clone()).await;
    let id = published["message_id"].as_str().unwrap();
    let (status, body) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message_id"], id);
    assert_eq!(body["queue"], "delivery.events");
    assert_eq!(body["routing_key"], "delivery.created");
    assert_eq!(body["message"], sent["message"]);
    assert_eq!(body["headers"], sent["headers"]);
    assert_eq!(body["status"], "published");
    assert_eq!(body["published_at"], published["published_at"]);
    assert_eq!(body["consumed_at"], Value::Null);
    assert_eq!(body["acknowledged_at"], Value::Null);
    assert_eq!(body["ttl"], 3600);
    assert_eq!(body["persistent"], true);
    assert_eq!(body["retry_count"], 0);
    assert_eq!(body["redelivery_count"], 0);
}

#[tokio::test]
async fn spec000_subscribe_example_is_stored_and_answered_with_every_field() {
    let server = TestServer::start().await;
    let (status, body) = server.post("/message-queue/subscribe", spec000_subscribe()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["subscription_id"].as_str().unwrap().starts_with("sub_"));
    assert_eq!(body["queue"], "delivery.events");
    assert_eq!(body["routing_key"], "delivery.*");
    assert_eq!(body["callback_url"], "https://api.delivery.com/delivery-service/events");
    assert_eq!(body["status"], "active");
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_rfc3339(&body["created_at"]);
    assert_eq!(body["retry_policy"], json!({"max_retries": 3, "retry_delay": 1000, "backoff_multiplier": 2.0}));
    assert_eq!(body["dead_letter_queue"], "delivery.events.dlq");
    assert_eq!(body["prefetch_count"], 10);
    assert!(body.get("headers").is_none(), "callback headers hold credentials and are not echoed");
    // The subscription counts as the queue's consumer; the dead-letter queue exists.
    let (_, queue) = server.get("/message-queue/queues/delivery.events").await;
    assert_eq!(queue["consumer_count"], 1);
    assert_eq!(queue["status"], "active");
    let (status, _) = server.get("/message-queue/queues/delivery.events.dlq").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn spec000_queue_status_has_every_field_of_the_example() {
    let server = TestServer::start().await;
    for _ in 0..3 {
        server.post("/message-queue/publish", spec000_publish()).await;
    }
    let (status, body) = server.get("/message-queue/queues/delivery.events").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queue"], "delivery.events");
    assert_eq!(body["status"], "idle");
    assert_eq!(body["message_count"], 3);
    assert_eq!(body["consumer_count"], 0);
    assert_eq!(body["durable"], true);
    assert_eq!(body["auto_delete"], false);
    assert_eq!(body["exclusive"], false);
    assert_eq!(body["arguments"], json!({}));
    let stats = &body["statistics"];
    assert_eq!(stats["messages_published"], 3);
    for counter in ["messages_consumed", "messages_acknowledged", "messages_rejected", "messages_redelivered"] {
        assert_eq!(stats[counter], 0, "{counter}");
    }
    let perf = &body["performance"];
    assert!(perf["average_publish_time"].as_str().unwrap().ends_with("ms"));
    assert!(perf["average_consume_time"].as_str().unwrap().ends_with("ms"));
    assert!(perf["throughput_per_second"].is_number());
    assert_rfc3339(&body["created_at"]);
    assert_rfc3339(&body["last_updated"]);
}

#[tokio::test]
async fn spec002_produce_example_is_accepted_and_read_back() {
    let server = TestServer::start().await;
    let sent = json!({
      "topic": "user-events",
      "key": "user-123",
      "content": "{\"event\":\"login\",\"user_id\":\"123\"}",
      "headers": {"source": "auth-service"},
      "priority": 1,
      "ttl": "3600000000000"
    });
    let (status, body) = server.post("/api/v1/messages", sent.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["topic"], "user-events");
    assert_eq!(body["key"], "user-123");
    assert_eq!(body["ttl"], "3600000000000");
    assert!(body["partition"].is_u64() && body["offset"].is_u64());
    assert_rfc3339(&body["timestamp"]);
    let (_, msg) = server.get(&format!("/message-queue/messages/{}", body["message_id"].as_str().unwrap())).await;
    assert_eq!(msg["message"], sent["content"]);
    assert_eq!(msg["headers"], sent["headers"]);
    assert_eq!(msg["key"], "user-123");
    assert_eq!(msg["priority"], 1);
    assert_eq!(msg["ttl"], 3600);
}

#[tokio::test]
async fn spec002_curl_example_publishes_to_a_new_topic() {
    let server = TestServer::start().await;
    let (status, body) = server.post("/api/v1/messages", json!({"topic":"test","content":"Hello World"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, topic) = server.get("/api/v1/topics/test").await;
    assert_eq!(topic["message_count"], 1);
}

#[tokio::test]
async fn spec002_create_topic_example_makes_a_three_partition_topic() {
    let server = TestServer::start().await;
    let sent = json!({
      "name": "user-events",
      "partitions": 3,
      "replication": 3,
      "retention": "604800000000000",
      "max_size": "1073741824"
    });
    let (status, body) = server.post("/api/v1/topics", sent).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, topic) = server.get("/api/v1/topics/user-events").await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    // The same topic, but for the windows its figures cover, which end when they are read.
    let without_windows = |mut v: Value| {
        v["performance"]["window"].take();
        v["statistics"]["window"]["to"].take();
        v
    };
    assert_eq!(without_windows(topic.clone()), without_windows(body.clone()));
    assert_eq!(topic["name"], "user-events");
    assert_eq!(topic["partitions"], 3);
    assert_eq!(topic["replication"], 3);
    assert_eq!(topic["retention"], "604800000000000");
    assert_eq!(topic["max_size"], "1073741824");
    assert_eq!(topic["message_count"], 0);
    let empty = |p: u32| json!({"partition": p, "start_offset": 0, "end_offset": 0});
    assert_eq!(topic["partition_offsets"], json!([empty(0), empty(1), empty(2)]));
    assert_rfc3339(&topic["created_at"]);
}

#[tokio::test]
async fn spec002_consume_acknowledge_and_register_examples_work_verbatim() {
    let server = TestServer::start().await;
    let register = json!({
      "consumer_id": "consumer-1",
      "group_id": "user-processor",
      "topics": ["user-events", "order-events"],
      "max_concurrency": 5,
      "rate_limit": 100
    });
    let (status, body) = server.post("/api/v1/consumers", register.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["topics"], register["topics"]);
    let (_, produced) = server.post("/api/v1/messages", json!({"topic": "user-events", "content": "x"})).await;
    let consume = json!({
      "topic": "user-events",
      "group_id": "user-processor",
      "consumer_id": "consumer-1",
      "max_messages": 10,
      "timeout": "30000000000"
    });
    let (status, body) = server.post("/api/v1/messages/consume", consume).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    assert_eq!(body["messages"][0]["message_id"], produced["message_id"]);
    let acknowledge = json!({
      "message_id": "msg-12345",
      "topic": "user-events",
      "success": true,
      "group_id": "user-processor"
    });
    let (status, body) = server.post("/api/v1/messages/acknowledge", acknowledge.clone()).await;
    assert_eq!(assert_error(status, &body, 404, "message_not_found")["message_id"], "msg-12345");
    let mut real = acknowledge;
    real["message_id"] = produced["message_id"].clone();
    let (status, body) = server.post("/api/v1/messages/acknowledge", real).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("acknowledged")));
}
