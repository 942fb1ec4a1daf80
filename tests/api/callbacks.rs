//! Callback safety from outside: every spelling of a non-public host is refused
//! at subscribe time, and again at delivery for subscriptions made while allowed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{helpers::*, receiver::CallbackReceiver};

/// Hosts standing for loopback, private, link-local and other non-public addresses,
/// in the spellings URL parsers, `inet_aton` and resolvers read as addresses.
const NON_PUBLIC: &[&str] = &[
    "127.0.0.1",
    "127.0.0.1.",
    "127.1",
    "127.1.",
    "0x7f000001",
    "0x7f000001.",
    "2130706433",
    "2130706433.",
    "0177.0.0.1",
    "0177.1.",
    "0x7f.1",
    "0X7F.0X0.0X0.0X1",
    "017700000001",
    "0",
    "0.",
    "0.0.0.0",
    "10.0.0.1",
    "10.1.",
    "0xa000001",
    "172.16.1",
    "192.168.1.1.",
    "3232235777",
    "169.254.169.254",
    "0xa9fea9fe.",
    "0251.0376.0251.0376",
    "100.64.0.1",
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]",
    "[2002:c0a8:101::]",
    "[fd00::1]",
    "[fe80::1]",
    "localhost",
    "localhost.",
    "hooks.localhost",
    "foo.127",
    "1.2.3.4.5",
];

async fn subscribe(server: &TestServer, queue: &str, url: &str) -> (StatusCode, Value) {
    let body = json!({"queue": queue, "callback_url": url, "retry_policy": {"max_retries": 0}});
    server.post("/message-queue/subscribe", body).await
}

#[tokio::test]
async fn every_spelling_of_a_non_public_callback_is_refused_at_subscribe() {
    let server = TestServer::start().await;
    for host in NON_PUBLIC {
        let (status, answer) = subscribe(&server, "q", &format!("http://{host}:9000/hook")).await;
        let details = assert_error(status, &answer, 400, "invalid_request");
        assert_eq!(details["field"], "callback_url", "{host}");
    }
    let allowed = TestServer::start_with(&[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.0/8,::1")]).await;
    for host in ["127.0.0.1", "127.1.", "[::1]", "localhost", "localhost."] {
        let (status, answer) = subscribe(&allowed, "q", &format!("http://{host}:9000/hook")).await;
        assert_eq!(status, StatusCode::CREATED, "{host}: {answer}");
    }
    let (status, answer) = subscribe(&allowed, "q", "http://10.0.0.1/x").await;
    assert_error(status, &answer, 400, "invalid_request");
}

/// Spellings of 127.0.0.1 that reach a receiver listening there.
const LOOPBACK: &[&str] =
    &["127.0.0.1.", "127.1.", "0x7f000001.", "2130706433.", "0177.1", "localhost.", "[::ffff:127.0.0.1]"];

#[tokio::test]
async fn a_subscription_made_while_allowed_is_refused_at_delivery_once_not() {
    let receiver = CallbackReceiver::start(&[]).await;
    let port = receiver.url.rsplit(':').next().unwrap().trim_end_matches("/hook").to_owned();
    let dir = tempfile::TempDir::new().unwrap();
    let allowing = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_CALLBACK_ALLOW", "0.0.0.0/0,::/0")]);
    for (i, host) in LOOPBACK.iter().enumerate() {
        let (status, answer) = subscribe(&allowing, &format!("q{i}"), &format!("http://{host}:{port}/hook")).await;
        assert_eq!(status, StatusCode::CREATED, "{host}: {answer}");
        allowing.publish(&format!("q{i}"), json!({"while": "allowed"})).await;
    }
    // While allowed, each spelling reaches the receiver on 127.0.0.1.
    assert_eq!(receiver.wait_for(LOOPBACK.len()).await.len(), LOOPBACK.len());
    allowing.kill_hard();

    let refusing = TestServer::start_in(dir.path(), &[]);
    let mut ids = Vec::new();
    for i in 0..LOOPBACK.len() {
        ids.push(refusing.publish(&format!("q{i}"), json!({"while": "refused"})).await);
    }
    for (host, id) in LOOPBACK.iter().zip(&ids) {
        let attempt = first_attempt(&refusing, id).await;
        assert_eq!(attempt["status_code"], Value::Null, "{host}: {attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(error.contains("loopback"), "{host}: {error}");
    }
    assert_eq!(receiver.received().len(), LOOPBACK.len(), "a refused delivery reached the receiver");
}

/// The first delivery attempt recorded on a message (waits up to 10 s).
async fn first_attempt(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, message) = server.get(&format!("/message-queue/messages/{id}")).await;
        if let Some(first) = message["attempts"].as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no attempt recorded on {id}: {message}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
