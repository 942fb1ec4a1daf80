//! Log lines: readable by default, JSON with `LOG_FORMAT=json`; every request has an id,
//! the client's `X-Request-Id` when usable, answered back and named on its log lines.

use reqwest::StatusCode;
use serde_json::Value;

use super::{helpers::*, receiver::CallbackReceiver};

#[tokio::test]
async fn json_lines_name_the_request_id_the_client_sent_and_got_back() {
    let dir = tempfile::TempDir::new().unwrap();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("LOG_FORMAT", "json"), ("RUST_LOG", "info,shared=debug")];
    let server = TestServer::start_logging(&dir.path().join("data"), &env, log);
    let url = format!("{}/message-queue/queues", server.base);
    let resp =
        server.client.get(&url).bearer_auth(&server.token).header("x-request-id", "trace-7:a").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], "trace-7:a");
    let resp = server.client.get(&url).header("x-request-id", "not usable").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "refusals carry an id too");
    let fresh = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(fresh.len() == 20 && fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
    server.terminate();

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let answered =
        |id: &str| lines.iter().find(|l| l["message"] == "answered" && l["span"]["request_id"] == id).cloned();
    let first = answered("trace-7:a").unwrap_or_else(|| panic!("no line names trace-7:a:\n{text}"));
    assert_eq!((first["status"].as_u64(), first["span"]["path"].as_str()), (Some(200), Some("/message-queue/queues")));
    assert_eq!(first["level"], "DEBUG");
    assert!(first["timestamp"].is_string());
    assert_eq!(answered(&fresh).unwrap()["status"], 401);
}

#[test]
fn an_unknown_log_format_stops_the_start_naming_the_variable() {
    let dir = tempfile::TempDir::new().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_message-queue"))
        .env("MESSAGE_QUEUE_DATA_DIR", dir.path())
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOG_FORMAT") && stderr.contains("text or json"), "{stderr}");
}

#[tokio::test]
async fn a_push_attempt_line_names_its_queue_subscription_and_message() {
    let dir = tempfile::TempDir::new().unwrap();
    let log_path = dir.path().join("server.log");
    let env =
        [("LOG_FORMAT", "json"), ("RUST_LOG", "info,shared=debug"), ("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32")];
    let server = TestServer::start_logging(&dir.path().join("data"), &env, std::fs::File::create(&log_path).unwrap());
    let receiver = CallbackReceiver::start(&[]).await;
    let (status, sub) = server
        .post("/message-queue/subscribe", serde_json::json!({"queue": "logged", "callback_url": receiver.url}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let id = server.publish("logged", serde_json::json!({"x": 1})).await;
    receiver.wait_for(1).await;
    // The line is written once the callback has answered, a moment after it received.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "push attempt");
        match found {
            Some(line) => break line,
            None if std::time::Instant::now() > deadline => panic!("no push attempt line:\n{text}"),
            None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    server.terminate();
    assert_eq!((&line["queue"], &line["message_id"]), (&Value::from("logged"), &Value::from(id)), "{line}");
    assert_eq!(line["subscription"], sub["subscription_id"], "{line}");
}
