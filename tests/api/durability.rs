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
