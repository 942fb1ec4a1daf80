//! A publish answered 2xx survives SIGKILL of the server.

use std::{collections::HashMap, sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn every_answered_publish_survives_sigkill_mid_load() {
    let dir = tempfile::TempDir::new().unwrap();
    let server = Arc::new(TestServer::start_in(dir.path(), &[]));
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut answered: Vec<(String, Value)> = Vec::new();
            for i in 0..5000u64 {
                let message = json!({"worker": worker, "i": i});
                let body = json!({"queue": format!("durable-{}", worker % 2), "message": message});
                let url = format!("{}/message-queue/publish", server.base);
                match server.client.post(url).bearer_auth(&server.token).json(&body).send().await {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        let (_, answer) = read(resp).await;
                        answered.push((answer["message_id"].as_str().unwrap().to_owned(), message));
                    }
                    // The server died under this request: no promise was made for it.
                    _ => break,
                }
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill_hard();
    let mut answered = HashMap::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    drop(server);
    assert!(answered.len() > 8, "some publishes were answered before the kill");

    let restarted = TestServer::start_in(dir.path(), &[]);
    for (id, message) in &answered {
        let (status, body) = restarted.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id} was answered 2xx but is gone: {body}");
        assert_eq!(&body["message"], message);
    }
    // Publishing goes on after the restart, with fresh ids.
    let next = restarted.publish("durable-0", json!({"after": "restart"})).await;
    assert!(!answered.contains_key(&next));
}

#[tokio::test]
async fn two_processes_share_one_data_directory_with_the_log_in_the_sqlite_file() {
    let dir = tempfile::TempDir::new().unwrap();
    let first = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "store")]);
    let second = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "store")]);
    let mut ids = Vec::new();
    for i in 0..20 {
        let server = if i % 2 == 0 { &first } else { &second };
        ids.push(server.publish("shared", json!({"i": i})).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let reader = if i % 2 == 0 { &second } else { &first };
        let (status, body) = reader.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"], json!({"i": i}));
    }
    let (_, queue) = first.get("/message-queue/queues/shared").await;
    assert_eq!(queue["statistics"]["messages_published"], 20);
}

#[tokio::test]
async fn a_second_process_on_the_default_log_files_is_refused_with_the_reason() {
    let dir = tempfile::TempDir::new().unwrap();
    let _first = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "files")]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_message-queue"))
        .env("MESSAGE_QUEUE_PORT", "0")
        .env("MESSAGE_QUEUE_DATA_DIR", dir.path())
        .env("JWT_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("open in another process") && stderr.contains("MESSAGE_QUEUE_LOG"), "{stderr}");
}

#[tokio::test]
async fn messages_kept_in_the_sqlite_file_move_to_the_log_files_on_upgrade() {
    let dir = tempfile::TempDir::new().unwrap();
    let before = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "store")]);
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push((before.publish(&format!("kept-{}", i % 2), json!({"i": i})).await, i));
    }
    before.terminate();

    let after = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "files")]);
    for (id, i) in &ids {
        let (status, body) = after.get(&format!("/message-queue/messages/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        assert_eq!(body["message"], json!({"i": i}));
    }
    let next = after.publish("kept-0", json!({"after": "upgrade"})).await;
    assert!(ids.iter().all(|(id, _)| *id != next), "offsets go on from where they were");
    let (_, queue) = after.get("/message-queue/queues/kept-0").await;
    assert_eq!(queue["message_count"], 16, "{queue}");
}
