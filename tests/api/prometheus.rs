//! The Prometheus exposition on `METRICS_ADDR`, scraped and read with a parser of the text format.

use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

async fn scrape(server: &TestServer) -> Scrape {
    let url = server.metrics.as_ref().expect("the server serves metrics");
    let resp = server.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of `metric` with label `queue`=`queue` (or with no queue label).
fn value<'a>(scrape: &'a Scrape, metric: &str, queue: Option<&str>) -> Option<&'a Value> {
    scrape.samples.iter().find(|s| s.metric == metric && s.labels.get("queue") == queue).map(|s| &s.value)
}

#[tokio::test]
async fn counts_of_spec_002_names_histograms_and_active_consumers_are_exposed() {
    let server = TestServer::start().await;
    for i in 0..3 {
        server.publish("prom-a", json!({"i": i})).await;
    }
    for i in 0..2 {
        server.publish("prom-b", json!({"i": i})).await;
    }
    let consume = json!({"topic": "prom-a", "group_id": "g", "consumer_id": "c1", "max_messages": 10});
    let (status, got) = server.post("/api/v1/messages/consume", consume).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let items = receipts(&got);
    assert_eq!(items.len(), 3);
    let ack = json!({"messages": items, "topic": "prom-a", "success": true, "group_id": "g"});
    let (status, body) = server.post("/api/v1/messages/acknowledge", ack).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let scrape = scrape(&server).await;
    let counter = |metric: &str, queue: &str| match value(&scrape, metric, Some(queue)) {
        Some(Value::Counter(v)) => *v,
        other => panic!("{metric}{{queue={queue}}}: {other:?}"),
    };
    assert_eq!(counter("message_queue_messages_produced_total", "prom-a"), 3.0);
    assert_eq!(counter("message_queue_messages_produced_total", "prom-b"), 2.0);
    assert_eq!(counter("message_queue_messages_consumed_total", "prom-a"), 3.0);
    assert_eq!(counter("message_queue_messages_acknowledged_total", "prom-a"), 3.0);
    assert!(value(&scrape, "message_queue_messages_consumed_total", Some("prom-b")).is_none(), "none consumed");
    assert_eq!(value(&scrape, "message_queue_active_consumers", Some("prom-a")), Some(&Value::Gauge(1.0)));
    assert_eq!(value(&scrape, "message_queue_active_consumers", Some("prom-b")), Some(&Value::Gauge(0.0)));
    match value(&scrape, "message_queue_publish_latency_seconds", Some("prom-a")) {
        Some(Value::Histogram(buckets)) => {
            let all = buckets.iter().find(|b| b.less_than.is_infinite()).expect("a +Inf bucket");
            assert_eq!(all.count, 3.0, "{buckets:?}");
            assert!(buckets.iter().any(|b| b.less_than == 0.0001), "{buckets:?}");
        }
        other => panic!("publish latency is not a histogram: {other:?}"),
    }
    assert!(
        matches!(value(&scrape, "message_queue_processing_latency_seconds", None), Some(Value::Histogram(_))),
        "processing latency is a histogram"
    );
    let requests = scrape
        .samples
        .iter()
        .find(|s| s.metric == "message_queue_http_requests_total" && s.labels.get("class") == Some("2xx"));
    assert!(matches!(requests.map(|s| &s.value), Some(Value::Counter(n)) if *n >= 7.0), "{requests:?}");
    // Every timed step is a histogram per queue: the acknowledgement (one call of three) and end to end (three).
    let histogram_count = |metric: &str| match value(&scrape, metric, Some("prom-a")) {
        Some(Value::Histogram(buckets)) => buckets.iter().find(|b| b.less_than.is_infinite()).map(|b| b.count),
        other => panic!("{metric} is not a histogram: {other:?}"),
    };
    assert_eq!(histogram_count("message_queue_consume_latency_seconds"), Some(1.0));
    assert_eq!(histogram_count("message_queue_end_to_end_latency_seconds"), Some(3.0));
    assert_eq!(histogram_count("message_queue_acknowledge_latency_seconds"), Some(3.0));
    let operation = |op: &str, outcome: &str| {
        let found = scrape.samples.iter().find(|s| {
            s.metric == "message_queue_operations_total"
                && s.labels.get("operation") == Some(op)
                && s.labels.get("outcome") == Some(outcome)
        });
        match found.map(|s| &s.value) {
            Some(Value::Counter(n)) => *n,
            other => panic!("{op} {outcome}: {other:?}"),
        }
    };
    assert_eq!((operation("publish", "ok"), operation("consume", "ok")), (5.0, 1.0));
    assert_eq!(operation("acknowledge", "ok"), 3.0);
}

#[tokio::test]
async fn push_attempts_count_by_outcome_and_refused_calls_by_class() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32")]).await;
    let receiver = super::receiver::CallbackReceiver::start(&[(503, None)]).await;
    let sub = json!({"queue": "prom-push", "callback_url": receiver.url, "retry_policy": {"retry_delay": 10}});
    assert_eq!(server.post("/message-queue/subscribe", sub).await.0, StatusCode::CREATED);
    server.publish("prom-push", json!({"i": 1})).await;
    assert_eq!(receiver.wait_for(2).await.len(), 2);
    let missing = json!({"topic": "prom-missing", "group_id": "g", "consumer_id": "c"});
    assert_eq!(server.post("/api/v1/messages/consume", missing).await.0, StatusCode::NOT_FOUND);
    // The second attempt's outcome is recorded once its answer is read: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let scrape = loop {
        let scrape = scrape(&server).await;
        let delivered = scrape.samples.iter().any(|s| {
            s.metric == "message_queue_push_attempts_total" && s.labels.get("outcome") == Some("delivered")
        });
        if delivered || std::time::Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let labelled = |metric: &str, key: &str, value: &str| {
        let found = scrape.samples.iter().find(|s| s.metric == metric && s.labels.get(key) == Some(value));
        match found.map(|s| &s.value) {
            Some(Value::Counter(n)) => *n,
            other => panic!("{metric}{{{key}={value}}}: {other:?}"),
        }
    };
    assert_eq!(labelled("message_queue_push_attempts_total", "outcome", "failed"), 1.0);
    assert_eq!(labelled("message_queue_push_attempts_total", "outcome", "delivered"), 1.0);
    let refused = scrape.samples.iter().find(|s| {
        s.metric == "message_queue_operations_total"
            && s.labels.get("operation") == Some("consume")
            && s.labels.get("outcome") == Some("client_error")
    });
    assert!(matches!(refused.map(|s| &s.value), Some(Value::Counter(n)) if *n == 1.0), "{refused:?}");
    assert!(matches!(
        value(&scrape, "message_queue_push_latency_seconds", Some("prom-push")),
        Some(Value::Histogram(_))
    ));
}

#[tokio::test]
async fn metrics_addr_off_serves_none() {
    let server = TestServer::start_with(&[("METRICS_ADDR", "off")]).await;
    assert!(server.metrics.is_none());
    let (status, _) = server.get("/message-queue/queues").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_message_expired_before_delivery_counts_as_expired_not_consumed_in_both_places() {
    let server = TestServer::start().await;
    let body = json!({"queue": "prom-ttl", "message": {"x": 1}, "ttl": 1});
    let (status, _) = server.post("/message-queue/publish", body).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let consume = json!({"topic": "prom-ttl", "group_id": "g", "consumer_id": "c1", "max_messages": 10});
    let (status, got) = server.post("/api/v1/messages/consume", consume).await;
    assert_eq!((status, got["messages"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{got}");
    let (_, queue) = server.get("/message-queue/queues/prom-ttl").await;
    assert_eq!(
        (&queue["statistics"]["messages_consumed"], &queue["statistics"]["messages_expired"]),
        (&json!(0), &json!(1))
    );
    let scrape = scrape(&server).await;
    assert!(value(&scrape, "message_queue_messages_consumed_total", Some("prom-ttl")).is_none());
    assert_eq!(value(&scrape, "message_queue_messages_expired_total", Some("prom-ttl")), Some(&Value::Counter(1.0)));
}
