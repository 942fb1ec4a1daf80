//! Bad input: each case answers the spec's error shape with the right status,
//! code and field, and nothing already accepted is lost or changed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::helpers::*;

/// (path, body, status, code, details.field or "")
type Case = (&'static str, Value, u16, &'static str, &'static str);

fn body_cases() -> Vec<Case> {
    let long = "x".repeat(250);
    vec![
        ("/message-queue/publish", json!({"message": {"a": 1}}), 400, "invalid_request", "queue"),
        ("/message-queue/publish", json!({"queue": "q"}), 400, "invalid_message", "message"),
        ("/message-queue/publish", json!({"queue": "q", "message": null}), 400, "invalid_message", "message"),
        ("/message-queue/publish", json!({"queue": "q", "message": ""}), 400, "invalid_message", "message"),
        ("/message-queue/publish", json!({"queue": "q", "message": {}}), 400, "invalid_message", "message"),
        ("/message-queue/publish", json!({"queue": "q", "message": []}), 400, "invalid_message", "message"),
        ("/message-queue/publish", json!({"queue": 5, "message": 1}), 400, "invalid_request", "queue"),
        ("/message-queue/publish", json!({"queue": "q", "message": 1, "ttl": "abc"}), 400, "invalid_request", "ttl"),
        ("/message-queue/publish", json!({"queue": "q", "message": 1, "ttl": -1}), 400, "invalid_request", "ttl"),
        ("/message-queue/publish", json!({"queue": "q", "message": 1, "ttl": 0}), 400, "invalid_request", "ttl"),
        (
            "/message-queue/publish",
            json!({"queue": "q", "message": 1, "persistent": "yes"}),
            400,
            "invalid_request",
            "persistent",
        ),
        (
            "/message-queue/publish",
            json!({"queue": "q", "message": 1, "headers": []}),
            400,
            "invalid_request",
            "headers",
        ),
        (
            "/message-queue/publish",
            json!({"queue": "q", "message": 1, "routingkey": "a"}),
            400,
            "invalid_request",
            "routingkey",
        ),
        ("/message-queue/publish", json!({"queue": "a b", "message": 1}), 400, "invalid_request", "queue"),
        ("/message-queue/publish", json!({"queue": long, "message": 1}), 400, "invalid_request", "queue"),
        ("/api/v1/messages", json!({"content": "x"}), 400, "invalid_request", "topic"),
        ("/api/v1/messages", json!({"topic": "t"}), 400, "invalid_message", "content"),
        ("/api/v1/messages", json!({"topic": "t", "content": ""}), 400, "invalid_message", "content"),
        ("/api/v1/messages", json!({"topic": "t", "content": 123}), 400, "invalid_message", "content"),
        (
            "/api/v1/messages",
            json!({"topic": "t", "content": "x", "priority": 300}),
            400,
            "invalid_request",
            "priority",
        ),
        (
            "/api/v1/messages",
            json!({"topic": "t", "content": "x", "headers": {"a": 1}}),
            400,
            "invalid_request",
            "headers.a",
        ),
        ("/api/v1/messages", json!({"topic": "t", "content": "x", "ttl": "soon"}), 400, "invalid_request", "ttl"),
        ("/api/v1/topics", json!({"partitions": 1}), 400, "invalid_request", "name"),
        ("/api/v1/topics", json!({"name": "t", "partitions": 0}), 400, "invalid_request", "partitions"),
        ("/api/v1/topics", json!({"name": "t", "retention": "abc"}), 400, "invalid_request", "retention"),
        ("/api/v1/topics", json!({"name": "t", "max_size": "big"}), 400, "invalid_request", "max_size"),
        ("/message-queue/subscribe", json!({"queue": "q"}), 400, "invalid_request", "callback_url"),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "ftp://x/y"}),
            400,
            "invalid_request",
            "callback_url",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "/relative"}),
            400,
            "invalid_request",
            "callback_url",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://u:p@h/x"}),
            400,
            "invalid_request",
            "callback_url",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://h/x", "prefetch_count": 0}),
            400,
            "invalid_request",
            "prefetch_count",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://h/x", "retry_policy": {"max_retries": 101}}),
            400,
            "invalid_request",
            "retry_policy.max_retries",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://h/x", "retry_policy": {"backoff_multiplier": 0.5}}),
            400,
            "invalid_request",
            "retry_policy.backoff_multiplier",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://h/x", "retry_policy": {"jitter": true}}),
            400,
            "invalid_request",
            "retry_policy.jitter",
        ),
        (
            "/message-queue/subscribe",
            json!({"queue": "q", "callback_url": "https://h/x", "routing_key": "a*"}),
            400,
            "invalid_request",
            "routing_key",
        ),
    ]
}

#[tokio::test]
async fn every_bad_body_gets_the_error_shape_with_the_field_at_fault() {
    let server = TestServer::start().await;
    for (path, body, status, code, field) in body_cases() {
        let (got, answer) = server.post(path, body.clone()).await;
        let details = assert_error(got, &answer, status, code);
        assert_eq!(details["field"], field, "{path} {body}: {answer}");
        assert!(details["issue"].as_str().is_some_and(|i| !i.is_empty()), "{answer}");
    }
}

#[tokio::test]
async fn malformed_json_says_where() {
    let server = TestServer::start().await;
    for body in ["{\"queue\": ", "{queue: 1}", "", "{\"queue\": \"q\", \"message\": 1} trailing"] {
        let (status, answer) = server.raw(Method::POST, "/message-queue/publish", Some("application/json"), body).await;
        let details = assert_error(status, &answer, 400, "invalid_json");
        assert!(details["line"].is_u64() && details["column"].is_u64(), "{answer}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let server = TestServer::start().await;
    for content_type in [Some("text/plain"), None, Some("application/xml")] {
        let (status, answer) = server.raw(Method::POST, "/message-queue/publish", content_type, "{}").await;
        assert_error(status, &answer, 415, "unsupported_media_type");
    }
    let (status, _) = server
        .raw(
            Method::POST,
            "/api/v1/messages",
            Some("application/json; charset=utf-8"),
            r#"{"topic":"t","content":"x"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn names_in_paths_are_checked() {
    let server = TestServer::start().await;
    let long = "x".repeat(250);
    for (path, field) in [
        ("/message-queue/queues/a%20b".to_owned(), "queue_name"),
        (format!("/message-queue/queues/{long}"), "queue_name"),
        ("/api/v1/topics/a%2Fb".to_owned(), "name"),
    ] {
        let (status, answer) = server.get(&path).await;
        assert_eq!(assert_error(status, &answer, 400, "invalid_request")["field"], field, "{path}");
    }
}

#[tokio::test]
async fn unknown_things_are_404_in_the_spec_shape() {
    let server = TestServer::start().await;
    let (status, answer) = server.get("/message-queue/queues/nope").await;
    assert_eq!(assert_error(status, &answer, 404, "queue_not_found")["queue"], "nope");
    let (status, answer) = server.call(Method::DELETE, "/message-queue/queues/nope", None).await;
    assert_error(status, &answer, 404, "queue_not_found");
    let (status, answer) = server.get("/api/v1/topics/nope").await;
    assert_eq!(assert_error(status, &answer, 404, "topic_not_found")["topic"], "nope");
    let id = server.publish("real", json!({"a": 1})).await;
    let foreign = id.replacen("msg_04", "msg_0c", 1);
    for unknown in ["msg_123456789", "nonsense", foreign.as_str()] {
        let (status, answer) = server.get(&format!("/message-queue/messages/{unknown}")).await;
        assert_eq!(assert_error(status, &answer, 404, "message_not_found")["message_id"], unknown);
    }
    let (status, answer) = server.get("/no/such/route").await;
    assert_error(status, &answer, 404, "not_found");
    let (status, answer) = server.call(Method::DELETE, "/message-queue/publish", None).await;
    assert_error(status, &answer, 405, "method_not_allowed");
}

#[tokio::test]
async fn oversized_messages_and_bodies_are_413() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_MAX_SIZE", "1024")]).await;
    let (status, answer) =
        server.post("/message-queue/publish", json!({"queue": "q", "message": "x".repeat(2048)})).await;
    assert_eq!(assert_error(status, &answer, 413, "payload_too_large")["limit"], 1024);
    let (status, answer) = server.post("/api/v1/messages", json!({"topic": "q", "content": "x".repeat(1025)})).await;
    assert_error(status, &answer, 413, "payload_too_large");
    let huge = format!(r#"{{"topic": "q", "content": "{}"}}"#, "x".repeat(1024 + 65_536));
    let (status, answer) = server.raw(Method::POST, "/api/v1/messages", Some("application/json"), &huge).await;
    assert_eq!(assert_error(status, &answer, 413, "payload_too_large")["limit"], 1024 + 65_536);
}

#[tokio::test]
async fn a_declared_huge_body_is_refused_before_it_is_sent() {
    let server = TestServer::start().await;
    let head = format!(
        "POST /message-queue/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        server.token
    );
    assert!(raw_status(&server, head.as_bytes()).await.starts_with("HTTP/1.1 413"));
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_MAX_SIZE", "1024")]).await;
    let mut request = format!(
        "POST /message-queue/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.token
    )
    .into_bytes();
    let chunk = "x".repeat(8192);
    for _ in 0..10 {
        request.extend(format!("{:x}\r\n{chunk}\r\n", chunk.len()).into_bytes());
    }
    request.extend(b"0\r\n\r\n");
    assert!(raw_status(&server, &request).await.starts_with("HTTP/1.1 413"));
}

/// Writes raw bytes to the server and answers its status line.
async fn raw_status(server: &TestServer, request: &[u8]) -> String {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything; a failed write is fine.
    let _ = stream.write_all(request).await;
    let mut buf = vec![0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..read]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn refused_requests_change_nothing_already_accepted() {
    let server = TestServer::start().await;
    let first = server.publish("kept", json!({"n": 1})).await;
    let second = server.publish("kept", json!({"n": 2})).await;
    let (_, before) = server.get("/message-queue/queues/kept").await;
    for (path, body, ..) in body_cases() {
        let mut body = body;
        // Aim at the queue whose messages must stay unchanged, but keep a bad name bad.
        if body.get("queue") == Some(&json!("q")) {
            body["queue"] = json!("kept");
        }
        server.post(path, body).await;
    }
    server.raw(Method::POST, "/message-queue/publish", Some("application/json"), "{\"queue\": \"kept\", ").await;
    server.raw(Method::POST, "/message-queue/publish", Some("text/plain"), "{\"queue\": \"kept\"}").await;
    for (id, n) in [(first, 1), (second, 2)] {
        let (status, msg) = server.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(msg["message"], json!({"n": n}));
    }
    let (_, after) = server.get("/message-queue/queues/kept").await;
    assert_eq!(after["message_count"], before["message_count"]);
    assert_eq!(after["statistics"]["messages_published"], 2);
}

#[tokio::test]
async fn callbacks_to_private_addresses_are_refused_unless_allowed() {
    let server = TestServer::start().await;
    for host in [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "2130706433",
        "0177.0.0.1",
        "localhost",
    ] {
        let body = json!({"queue": "q", "callback_url": format!("http://{host}:9000/hook")});
        let (status, answer) = server.post("/message-queue/subscribe", body).await;
        let details = assert_error(status, &answer, 400, "invalid_request");
        assert_eq!(details["field"], "callback_url", "{host}");
    }
    let allowed = TestServer::start_with(&[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.0/8,::1")]).await;
    for host in ["127.0.0.1", "[::1]", "localhost"] {
        let body = json!({"queue": "q", "callback_url": format!("http://{host}:9000/hook")});
        let (status, answer) = allowed.post("/message-queue/subscribe", body).await;
        assert_eq!(status, StatusCode::CREATED, "{host}: {answer}");
    }
    let (status, answer) =
        allowed.post("/message-queue/subscribe", json!({"queue": "q", "callback_url": "http://10.0.0.1/x"})).await;
    assert_error(status, &answer, 400, "invalid_request");
}
