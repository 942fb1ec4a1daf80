//! Both health endpoints, without a token.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

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
    assert_eq!(body["broker"]["type"], "segment-files", "the embedded default's log");
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
    assert_eq!(body["checks"]["storage"]["type"], "segment-files");
    assert_rfc3339(&body["timestamp"]);
}
