//! Push delivery to subscriber callbacks: routing, fan-out, signatures,
//! retries with backoff, `Retry-After`, and dead-lettering.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{helpers::*, receiver::CallbackReceiver};

async fn local_server() -> TestServer {
    TestServer::start_with(&[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32")]).await
}

async fn subscribe(server: &TestServer, body: Value) -> Value {
    let (status, answer) = server.post("/message-queue/subscribe", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

async fn publish_with_key(server: &TestServer, queue: &str, key: &str, n: u64) -> String {
    let body = json!({"queue": queue, "routing_key": key, "message": {"n": n}});
    let (status, answer) = server.post("/message-queue/publish", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["message_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_subscription_gets_the_messages_its_pattern_selects() {
    let server = local_server().await;
    let (narrow, wide) = (CallbackReceiver::start(&[]).await, CallbackReceiver::start(&[]).await);
    let a =
        subscribe(&server, json!({"queue": "events", "routing_key": "delivery.*", "callback_url": narrow.url})).await;
    subscribe(&server, json!({"queue": "events", "routing_key": "#", "callback_url": wide.url})).await;
    let id = publish_with_key(&server, "events", "delivery.created", 1).await;
    publish_with_key(&server, "events", "payment.settled", 2).await;
    let got = wide.wait_for(2).await;
    assert_eq!(got.len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = narrow.received();
    assert_eq!(got.len(), 1, "only the delivery.* message");
    let r = &got[0];
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), json!({"n": 1}));
    assert_eq!(
        (r.header("webhook-id"), r.header("x-routing-key"), r.header("x-delivery-attempt")),
        (id.clone(), "delivery.created".into(), "1".into())
    );
    let secret = a["secret"].as_str().unwrap();
    let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap();
    let expected = shared::dispatch::signature::sign(secret, &id, timestamp, r.body.as_bytes());
    assert_eq!(r.header("webhook-signature"), expected);
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    let states: Vec<&str> =
        msg["deliveries"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["acknowledged", "acknowledged"]);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_growing_delays() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(500, None), (503, None), (200, None)]).await;
    let policy = json!({"max_retries": 3, "retry_delay": 200, "backoff_multiplier": 2});
    subscribe(&server, json!({"queue": "flaky", "callback_url": receiver.url, "retry_policy": policy, "headers": {"authorization": "Bearer s3cret"}})).await;
    let id = publish_with_key(&server, "flaky", "a", 1).await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let attempts: Vec<String> = got.iter().map(|r| r.header("x-delivery-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(got.iter().all(|r| r.header("authorization") == "Bearer s3cret"));
    let (first, second) = (got[1].at - got[0].at, got[2].at - got[1].at);
    assert!(first >= Duration::from_millis(190), "first retry after ~200 ms, was {first:?}");
    assert!(second >= Duration::from_millis(390), "second retry after ~400 ms, was {second:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["deliveries"][0]["status"], "acknowledged");
    assert_eq!(msg["deliveries"][0]["delivery_count"], 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(429, Some("1"))]).await;
    subscribe(&server, json!({"queue": "busy", "callback_url": receiver.url, "retry_policy": {"retry_delay": 10}}))
        .await;
    publish_with_key(&server, "busy", "a", 1).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(950), "waited {:?}", got[1].at - got[0].at);
}

#[tokio::test]
async fn after_max_retries_a_message_goes_to_the_dead_letter_queue() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(500, None), (500, None), (500, None)]).await;
    let policy = json!({"max_retries": 1, "retry_delay": 50, "backoff_multiplier": 1});
    let body = json!({"queue": "doomed", "callback_url": receiver.url, "retry_policy": policy, "dead_letter_queue": "doomed.dlq"});
    subscribe(&server, body).await;
    let id = publish_with_key(&server, "doomed", "a", 1).await;
    assert_eq!(receiver.wait_for(2).await.len(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let dead = loop {
        let (_, got) = server
            .post("/api/v1/messages/consume", json!({"topic": "doomed.dlq", "group_id": "audit", "consumer_id": "x"}))
            .await;
        if got["count"] == 1 || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let headers = &dead["messages"][0]["headers"];
    assert_eq!(headers["x-original-message-id"], id.as_str());
    assert_eq!(headers["x-dead-letter-reason"], "delivery_limit");
    assert_eq!(headers["x-dead-letter-detail"], "callback answered 500");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2, "no attempt past max_retries");
}

#[tokio::test]
async fn subscriptions_are_listed_read_paused_resumed_rotated_and_deleted() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[]).await;
    let created = subscribe(&server, json!({"queue": "managed", "callback_url": receiver.url})).await;
    let id = created["subscription_id"].as_str().unwrap().to_owned();
    let (status, list) = server.get("/message-queue/subscriptions?queue=managed").await;
    assert_eq!((status, list["total"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, read) = server.get(&format!("/message-queue/subscriptions/{id}")).await;
    assert_eq!(read["status"], "active");
    assert!(read.get("secret").is_none(), "the secret is answered only at creation and rotation");
    let (_, paused) =
        server.post(&format!("/message-queue/subscriptions/{id}/pause"), json!({"reason": "maintenance"})).await;
    assert_eq!((paused["status"].as_str(), paused["paused_reason"].as_str()), (Some("paused"), Some("maintenance")));
    publish_with_key(&server, "managed", "a", 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received().is_empty(), "a paused subscription gets nothing");
    let (_, resumed) = server.post(&format!("/message-queue/subscriptions/{id}/resume"), json!({})).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(receiver.wait_for(1).await.len(), 1);
    let (_, rotated) = server.post(&format!("/message-queue/subscriptions/{id}/secret"), json!({})).await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != created["secret"].as_str().unwrap());
    let msg = publish_with_key(&server, "managed", "a", 2).await;
    let got = receiver.wait_for(2).await;
    let r = &got[1];
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        r.header("webhook-signature"),
        shared::dispatch::signature::sign(new_secret, &msg, ts, r.body.as_bytes())
    );
    let (status, _) = server.call(reqwest::Method::DELETE, &format!("/message-queue/subscriptions/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = server.get(&format!("/message-queue/subscriptions/{id}")).await;
    assert_eq!(assert_error(status, &answer, 404, "subscription_not_found")["subscription_id"], id.as_str());
}

#[tokio::test]
async fn each_attempt_is_recorded_on_the_message() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(502, None)]).await;
    subscribe(&server, json!({"queue": "audited", "callback_url": receiver.url, "retry_policy": {"retry_delay": 50}}))
        .await;
    let id = publish_with_key(&server, "audited", "a", 1).await;
    receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    let attempts = msg["attempts"].as_array().unwrap();
    let codes: Vec<u64> = attempts.iter().map(|a| a["status_code"].as_u64().unwrap()).collect();
    assert_eq!(codes, [502, 200]);
    assert!(attempts.iter().all(|a| a["latency_ms"].is_u64() && a["at"].is_string()));
}

#[tokio::test]
async fn a_subscription_failing_for_long_is_paused_automatically() {
    let server = TestServer::start_with(&[
        ("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32"),
        ("MESSAGE_QUEUE_AUTO_PAUSE_AFTER", "200ms"),
    ])
    .await;
    let failures = [(500, None); 40];
    let receiver = CallbackReceiver::start(&failures).await;
    let policy = json!({"max_retries": 100, "retry_delay": 20, "backoff_multiplier": 1});
    let created =
        subscribe(&server, json!({"queue": "broken", "callback_url": receiver.url, "retry_policy": policy})).await;
    publish_with_key(&server, "broken", "a", 1).await;
    let path = format!("/message-queue/subscriptions/{}", created["subscription_id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let read = loop {
        let (_, read) = server.get(&path).await;
        if read["status"] == "paused" || std::time::Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(read["status"], "paused");
    assert!(read["paused_reason"].as_str().unwrap().contains("failed attempts"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), seen, "no attempts while paused");

    // Push delivery failing is a degraded service, not a down one.
    let id = created["subscription_id"].as_str().unwrap();
    let (status, health) = server.get("/health").await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("degraded")), "{health}");
    assert_eq!(health["checks"]["push"], json!({"status": "degraded", "failing_subscriptions": [id]}));
    let (_, health) = server.get("/message-queue/health").await;
    assert_eq!(health["status"], "degraded");
    let (status, _) = server.post(&format!("{path}/resume"), json!({})).await;
    assert!(status.is_success(), "{status}");
    let (_, health) = server.get("/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
}

/// The `n` of each message the receiver got, in the order it got them.
fn numbers(receiver: &[super::receiver::Received]) -> Vec<u64> {
    receiver.iter().map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["n"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn an_ordered_subscription_holds_order_within_a_partition_through_retries() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(200, None), (500, None), (500, None)]).await;
    let policy = json!({"retry_delay": 30, "backoff_multiplier": 1});
    let created = subscribe(
        &server,
        json!({"queue": "ordered", "callback_url": receiver.url, "retry_policy": policy, "ordered": true}),
    )
    .await;
    assert_eq!(created["ordered"], true);
    for n in 0..6 {
        publish_with_key(&server, "ordered", "a", n).await;
    }
    let got = numbers(&receiver.wait_for(8).await);
    assert_eq!(got, [0, 1, 1, 1, 2, 3, 4, 5], "message 1 is retried before 2 starts");
}

#[tokio::test]
async fn by_default_later_messages_go_on_while_a_failed_one_waits_for_its_retry() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(200, None), (500, None)]).await;
    let policy = json!({"retry_delay": 1500, "backoff_multiplier": 1});
    let created =
        subscribe(&server, json!({"queue": "unordered", "callback_url": receiver.url, "retry_policy": policy})).await;
    assert_eq!(created["ordered"], false);
    publish_with_key(&server, "unordered", "a", 0).await;
    assert_eq!(receiver.wait_for(1).await.len(), 1);
    publish_with_key(&server, "unordered", "a", 1).await;
    assert_eq!(receiver.wait_for(2).await.len(), 2, "message 1 failed once");
    for n in 2..6 {
        publish_with_key(&server, "unordered", "a", n).await;
    }
    // Messages 2 to 5 arrive while message 1 waits its 1.5 s; then message 1 again.
    let got = numbers(&receiver.wait_for(7).await);
    assert_eq!(got.len(), 7, "{got:?}");
    let mut later: Vec<u64> = got[2..6].to_vec();
    later.sort_unstable();
    assert_eq!((&got[..2], later.as_slice(), got[6]), (&[0, 1][..], &[2, 3, 4, 5][..], 1), "{got:?}");
}

#[tokio::test]
async fn prefetch_caps_deliveries_in_flight() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start_slow(&[], Duration::from_millis(150)).await;
    server.post("/api/v1/topics", json!({"name": "wide", "partitions": 6})).await;
    subscribe(&server, json!({"queue": "wide", "callback_url": receiver.url, "prefetch_count": 2})).await;
    for n in 0..12 {
        server.post("/api/v1/messages", json!({"topic": "wide", "content": format!("{n}")})).await;
    }
    assert_eq!(receiver.wait_for(12).await.len(), 12);
    assert_eq!(receiver.most_in_flight(), 2);
}

#[tokio::test]
async fn redirects_are_failures_not_followed() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[(302, None)]).await;
    subscribe(&server, json!({"queue": "moved", "callback_url": receiver.url, "retry_policy": {"retry_delay": 20}}))
        .await;
    let id = publish_with_key(&server, "moved", "a", 1).await;
    assert_eq!(receiver.wait_for(2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
    assert_eq!(msg["attempts"][0]["status_code"], 302);
}

#[tokio::test]
async fn headers_routing_selects_by_message_headers() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[]).await;
    let filter = json!({"x-match": "any", "format": "pdf", "type": "report"});
    subscribe(&server, json!({"queue": "docs", "callback_url": receiver.url, "match_headers": filter})).await;
    for headers in [json!({"format": "pdf"}), json!({"format": "zip"}), json!({"type": "report", "format": "zip"})] {
        server
            .post(
                "/message-queue/publish",
                json!({"queue": "docs", "message": {"h": headers.clone()}, "headers": headers}),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "the zip-only message is not selected");
    let (status, answer) = server
        .post(
            "/message-queue/subscribe",
            json!({"queue": "docs", "callback_url": receiver.url, "match_headers": {"x-match": "some"}}),
        )
        .await;
    assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], "match_headers");
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_failures_that_retry() {
    let server = TestServer::start_with(&[
        ("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32"),
        ("MESSAGE_QUEUE_CALLBACK_TIMEOUT", "150ms"),
    ])
    .await;
    let slow = CallbackReceiver::start_slow(&[], Duration::from_millis(600)).await;
    // A listener that accepts connections and drops them at once.
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dropper_url = format!("http://{}/hook", dropper.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = dropper.accept().await {
            drop(stream);
        }
    });
    let policy = json!({"max_retries": 1, "retry_delay": 20, "backoff_multiplier": 1});
    for (queue, url) in [("slow", slow.url.clone()), ("dropped", dropper_url)] {
        subscribe(&server, json!({"queue": queue, "callback_url": url, "retry_policy": policy, "dead_letter_queue": format!("{queue}.dlq")})).await;
    }
    let ids = [publish_with_key(&server, "slow", "a", 1).await, publish_with_key(&server, "dropped", "a", 1).await];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (id, error) in ids.iter().zip(["timed out", ""]) {
        let (_, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
        let attempts = msg["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{msg}");
        assert!(
            attempts
                .iter()
                .all(|a| a["status_code"].is_null() && a["error"].as_str().is_some_and(|e| e.contains(error))),
            "{msg}"
        );
        assert_eq!(msg["deliveries"][0]["status"], "dead_lettered", "{msg}");
    }
}

#[tokio::test]
async fn an_auto_delete_queue_goes_with_its_last_subscription() {
    let server = local_server().await;
    let receiver = CallbackReceiver::start(&[]).await;
    server.put("/message-queue/queues/temp", json!({"auto_delete": true})).await;
    let ids: Vec<String> = subscribe_times(&server, &receiver.url, 2).await;
    let (status, _) =
        server.call(reqwest::Method::DELETE, &format!("/message-queue/subscriptions/{}", ids[0]), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.get("/message-queue/queues/temp").await;
    assert_eq!(status, StatusCode::OK, "one subscription is left");
    server.call(reqwest::Method::DELETE, &format!("/message-queue/subscriptions/{}", ids[1]), None).await;
    let (status, answer) = server.get("/message-queue/queues/temp").await;
    assert_error(status, &answer, 404, "queue_not_found");
}

async fn subscribe_times(server: &TestServer, url: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let created = subscribe(server, json!({"queue": "temp", "callback_url": url})).await;
        ids.push(created["subscription_id"].as_str().unwrap().to_owned());
    }
    ids
}
