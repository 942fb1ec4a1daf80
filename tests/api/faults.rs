//! Faults in the middle of a publish-and-consume run on PostgreSQL (the ledger of `ledger.rs`):
//! the database restarted (fast shutdown, start), and the service killed with SIGKILL and
//! started again.

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;

use super::{
    helpers::{pg::OwnServer, *},
    ledger::run_with_fault,
};

/// The service's settings: short leases, so a lease lost with an answer comes back soon; a short
/// wait for a database connection, so requests during the outage answer 503 quickly.
/// Its log is kept to errors: every 503 during the outage is a warning.
const ENV: [(&str, &str); 3] =
    [("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "1s"), ("MESSAGE_QUEUE_DB_TIMEOUT", "1s"), ("RUST_LOG", "error")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_mid_run_answers_clean_503s_and_loses_nothing() {
    let db = Arc::new(OwnServer::start());
    let server = TestServer::start_with(&[&ENV[..], &[("MESSAGE_QUEUE_STORE", db.url.as_str())]].concat()).await;
    let run = run_with_fault(server, false, |run| {
        let db = db.clone();
        async move {
            db.stop_fast();
            let (status, health) = run.current().get("/health").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "health while the database is down: {health}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            db.start_again();
        }
    })
    .await;
    assert!(run.ledger.lock().unwrap().unavailable > 0, "the outage was seen as 503s");
    let (status, health) = run.current().get("/health").await;
    assert_eq!(status, StatusCode::OK, "health once the database is back: {health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_killed_mid_run_loses_nothing_after_its_restart() {
    let db = OwnServer::start();
    let env = [&ENV[..], &[("MESSAGE_QUEUE_STORE", db.url.as_str())]].concat();
    let server = TestServer::start_with(&env).await;
    run_with_fault(server, true, |run| async move {
        run.current().kill_hard();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let restarted = TestServer::start_with(&env).await;
        *run.server.write().unwrap() = Arc::new(restarted);
    })
    .await;
}
