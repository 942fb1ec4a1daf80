//! Connections from outside: slow clients are cut off, connections are capped,
//! a refused body is answered so the client can read it, and a stop is graceful.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use super::helpers::*;

const PUBLISH: &str = "/message-queue/publish";

/// A request's head with a valid token and `framing` (say a `Content-Length`).
fn head(path: &str, framing: &str) -> String {
    let auth = format!("Authorization: Bearer {}", token("slow-client"));
    format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
}

/// Reads until the server closes the connection, for at most `within`; answers what it read.
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| got)
}

fn assert_request_timeout(answer: &[u8]) {
    let (status, body) = parse_response(answer).expect("a whole HTTP answer");
    let details = assert_error(status, &body, 408, "request_timeout");
    assert_eq!(details["limit_ms"], 1000, "{body}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_and_the_connection_closes() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_BODY_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    // Promises 1000 bytes and sends 10.
    stream.write_all(format!("{}{{\"queue\":", head(PUBLISH, "Content-Length: 1000")).as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await.expect("closed within 10 s");
    assert_request_timeout(&answer);
    assert!(started.elapsed() < Duration::from_secs(5), "held for {:?}", started.elapsed());
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_408_within_the_limit() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_BODY_TIMEOUT", "1s")]).await;
    let (mut rx, mut tx) = TcpStream::connect(server.addr()).await.unwrap().into_split();
    tx.write_all(head(PUBLISH, "Content-Length: 100000").as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        while tx.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answer = read_until_closed(&mut rx, Duration::from_secs(15)).await.expect("closed within 15 s");
    assert_request_timeout(&answer);
    assert!(started.elapsed() < Duration::from_secs(12), "held for {:?}", started.elapsed());
    trickle.abort();
}

#[tokio::test]
async fn headers_that_never_end_and_idle_connections_are_closed() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_HEADER_TIMEOUT", "1s")]).await;
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();
    for stream in [&mut partial, &mut idle] {
        let got = read_until_closed(stream, Duration::from_secs(5)).await;
        assert!(got.is_some(), "a slow connection was still open after 5 s");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_is_free() {
    let limits = [("MESSAGE_QUEUE_MAX_CONNECTIONS", "2"), ("MESSAGE_QUEUE_HEADER_TIMEOUT", "2s")];
    let server = TestServer::start_with(&limits).await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("{}/health", server.base);
    let third = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!third.is_finished(), "a third connection was served while two held the cap");
    let status = tokio::time::timeout(Duration::from_secs(10), third).await.expect("served once a slot freed");
    assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    for stream in &mut holders {
        assert!(read_until_closed(stream, Duration::from_secs(5)).await.is_some(), "a holder was never closed");
    }
}

#[tokio::test]
async fn a_client_that_sends_a_whole_oversized_body_before_reading_gets_the_413() {
    let server = TestServer::start().await;
    let body = format!(r#"{{"queue":"big","message":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    // Without a lingering close the answer was lost to a reset about one time in four.
    for attempt in 0..20 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let request = format!("{}{body}", head(PUBLISH, &format!("Content-Length: {}", body.len())));
        stream.write_all(request.as_bytes()).await.unwrap_or_else(|e| panic!("attempt {attempt}: sending: {e}"));
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await.expect("closed within 10 s");
        let (status, answer) = parse_response(&answer).unwrap_or_else(|| panic!("attempt {attempt}: no answer"));
        assert_error(status, &answer, 413, "payload_too_large");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_answers_waiting_polls_at_once_and_exits_within_seconds() {
    let dir = tempfile::TempDir::new().unwrap();
    let log_path = dir.path().join("server.log");
    let server = TestServer::start_logging(dir.path(), &[], std::fs::File::create(&log_path).unwrap());
    server.publish("waiting", json!({"first": true})).await;
    let (status, _) =
        server.post("/api/v1/messages/consume", json!({"topic": "waiting", "group_id": "g", "consumer_id": "c"})).await;
    assert_eq!(status, StatusCode::OK);
    let (client, url, auth) =
        (server.client.clone(), format!("{}/api/v1/messages/consume", server.base), server.token.clone());
    let poll = tokio::spawn(async move {
        let body = json!({"topic": "waiting", "group_id": "g", "consumer_id": "c", "timeout": "60s"});
        read(client.post(url).bearer_auth(auth).json(&body).send().await.expect("answered")).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (exit, took) = tokio::task::block_in_place(|| server.terminate());
    assert!(exit.success(), "{exit}");
    assert!(took < Duration::from_secs(4), "took {took:?} to stop");
    let (status, answer) =
        tokio::time::timeout(Duration::from_secs(1), poll).await.expect("the poll was answered").unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["messages"], json!([]), "{answer}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().last().is_some_and(|l| l.contains("stopped")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_answered_around_a_stop_are_all_kept() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = TestServer::start_in(dir.path(), &[]);
    let mut publishers = JoinSet::new();
    for worker in 0..8 {
        let (client, url, auth) = (server.client.clone(), format!("{}{PUBLISH}", server.base), server.token.clone());
        publishers.spawn(async move {
            let mut kept = Vec::new();
            for n in 0.. {
                let body = json!({"queue": "stopping", "message": {"worker": worker, "n": n}});
                let Ok(resp) = client.post(&url).bearer_auth(&auth).json(&body).send().await else { break };
                let (status, answer) = read(resp).await;
                assert!(!status.is_server_error(), "{status} {answer}");
                kept.push(answer["message_id"].as_str().expect("an id").to_owned());
            }
            kept
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (exit, _) = tokio::task::block_in_place(|| server.terminate());
    assert!(exit.success(), "{exit}");
    let answered: Vec<String> = publishers.join_all().await.into_iter().flatten().collect();
    assert!(!answered.is_empty());
    let restarted = TestServer::start_in(dir.path(), &[]);
    for id in &answered {
        let (status, message) = restarted.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id} was answered but is gone: {message}");
    }
    let (_, queue) = restarted.get("/message-queue/queues/stopping").await;
    assert_eq!(queue["statistics"]["messages_published"], Value::from(answered.len()), "{queue}");
}
