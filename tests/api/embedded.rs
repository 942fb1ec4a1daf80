//! What only the embedded store does: SQLite files shared or refused, records moved from the
//! SQLite file into segment files, a file taken away under the running server.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

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

#[tokio::test]
async fn a_backend_gone_is_503_unhealthy_with_retry_after_and_back_once_it_returns() {
    let dir = tempfile::TempDir::new().unwrap();
    // The segment files' directory and the SQLite file, each taken away in turn.
    let server = TestServer::start_in(dir.path(), &[("MESSAGE_QUEUE_LOG", "files")]);
    server.publish("h", json!({"x": 1})).await;
    let health = |path: &'static str| {
        let url = format!("{}{path}", server.base);
        let client = server.client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let (status, body) = read(resp).await;
            (status, body, retry)
        }
    };
    for (gone, check) in [("mq-log", "storage"), ("mq.sqlite3", "metadata")] {
        let (path, away) = (dir.path().join(gone), dir.path().join(format!("{gone}.away")));
        std::fs::rename(&path, &away).unwrap();
        let (status, body, retry) = health("/health").await;
        assert_eq!((status, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{gone}: {body}");
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["checks"][check]["status"], "down", "{body}");
        assert!(body["checks"][check]["error"].as_str().unwrap().contains(gone), "{body}");
        let (status, body, _) = health("/message-queue/health").await;
        assert_eq!((status, &body["status"]), (StatusCode::SERVICE_UNAVAILABLE, &json!("unhealthy")), "{body}");
        let (status, _, _) = health("/health/live").await;
        assert_eq!(status, StatusCode::OK, "liveness asks no backend");
        std::fs::rename(&away, &path).unwrap();
        let (status, body, retry) = health("/health").await;
        assert_eq!((status, retry), (StatusCode::OK, None), "{gone} back: {body}");
        assert_eq!(body["checks"][check]["status"], "up");
    }
}
