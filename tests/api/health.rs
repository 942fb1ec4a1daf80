//! Both health endpoints, without a token.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

/// The message log's type as health shows it, for the log this suite runs on.
const LOG_KIND: &str = match (crate::POSTGRES, crate::LOG.as_bytes()) {
    _ if crate::KAFKA => "kafka",
    (true, _) => "postgres",
    (false, b"store") => "sqlite",
    _ => "segment-files",
};

#[tokio::test]
async fn message_queue_health_has_every_field_of_the_example() {
    let server = TestServer::start().await;
    server.publish("one", json!({"x": 1})).await;
    server.post("/message-queue/subscribe", json!({"queue": "two", "callback_url": "https://example.com/h"})).await;
    let resp = server.client.get(format!("{}/message-queue/health", server.base)).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert!(body["version"].is_string());
    assert!(body["uptime"].as_str().unwrap().ends_with('s'));
    assert_eq!(body["broker"]["status"], "connected");
    assert_eq!(body["broker"]["type"], LOG_KIND, "the log's backend");
    assert!(!body["broker"]["version"].as_str().unwrap().is_empty());
    assert!(body["broker"]["memory_usage"].is_string());
    assert!(body["broker"]["disk_usage"].is_string());
    assert_eq!(body["queues"], json!({"total": 2, "active": 1, "inactive": 1}));
    assert_eq!(body["consumers"]["total"], 1);
    assert!(body["performance"]["average_publish_time"].as_str().unwrap().ends_with("ms"));
    assert!(body["performance"]["error_rate"].is_number());
    assert_rfc3339(&body["last_updated"]);
}

#[tokio::test]
async fn api_v1_health_reports_the_storage_check() {
    let server = TestServer::start().await;
    let resp = server.client.get(format!("{}/health", server.base)).send().await.unwrap();
    let (status, body) = read(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["checks"]["storage"]["status"], "up");
    assert_eq!(body["checks"]["storage"]["type"], LOG_KIND);
    assert_rfc3339(&body["timestamp"]);
}

#[tokio::test]
async fn a_consumer_is_counted_the_same_in_queue_status_health_and_prometheus() {
    let server = TestServer::start().await;
    server.publish("counted", json!({"x": 1})).await;
    let consume = json!({"topic": "counted", "group_id": "g", "consumer_id": "c1", "max_messages": 1});
    let (status, _) = server.post("/api/v1/messages/consume", consume).await;
    assert_eq!(status, StatusCode::OK);
    let (_, queue) = server.get("/message-queue/queues/counted").await;
    assert_eq!(queue["consumer_count"], 1, "{queue}");
    let (_, health) = server.get("/message-queue/health").await;
    assert_eq!(health["consumers"], json!({"total": 1, "active": 1, "inactive": 0}), "{health}");
    assert_eq!(health["queues"]["active"], 1);
    let text = server.client.get(server.metrics.as_ref().unwrap()).send().await.unwrap().text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let gauge = scrape
        .samples
        .iter()
        .find(|s| s.metric == "message_queue_active_consumers" && s.labels.get("queue") == Some("counted"));
    assert_eq!(gauge.map(|s| &s.value), Some(&prometheus_parse::Value::Gauge(1.0)), "{text}");
}
