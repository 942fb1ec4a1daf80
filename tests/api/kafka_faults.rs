//! Faults in the middle of a publish-and-consume run on Kafka (the ledger of `ledger.rs`): the
//! broker killed with SIGKILL and started again on its storage, and the service killed with
//! SIGKILL and started again on its data directory.

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;

use super::{
    helpers::{kafka::Topics, *},
    ledger::run_with_fault,
};

/// The service's settings: short leases, so a lease lost with an answer comes back soon; a short
/// wait for the brokers, so requests during the outage answer 503 quickly. Its log is kept to
/// errors: every 503 during the outage is a warning.
const ENV: [(&str, &str); 3] =
    [("MESSAGE_QUEUE_VISIBILITY_TIMEOUT", "1s"), ("KAFKA_TIMEOUT", "2s"), ("RUST_LOG", "error")];

fn env(topics: &Topics) -> Vec<(&str, &str)> {
    [&ENV[..], &[("KAFKA_BROKERS", topics.brokers.as_str()), ("KAFKA_TOPIC_PREFIX", topics.prefix.as_str())]].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_run_answers_clean_503s_and_loses_nothing() {
    let topics = Arc::new(Topics::own());
    // tansu's storage panics on an idempotent produce after its restart and answers nothing
    // more (docs/kafka.md): on tansu the producer runs without idempotence, as the settings allow.
    let settings = [("KAFKA_SETTINGS", "enable.idempotence=false")];
    let server = TestServer::start_with(&[&env(&topics)[..], &settings].concat()).await;
    let run = run_with_fault(server, false, |run| {
        let topics = topics.clone();
        async move {
            topics.broker("kill");
            let (status, health) = run.current().get("/health").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "health while the broker is down: {health}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            topics.broker("start");
        }
    })
    .await;
    assert!(run.ledger.lock().unwrap().unavailable > 0, "the outage was seen as 503s");
    let (status, health) = run.current().get("/health").await;
    assert_eq!(status, StatusCode::OK, "health once the broker is back: {health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_killed_mid_run_loses_nothing_after_its_restart() {
    let topics = Topics::new();
    let dir = tempfile::TempDir::new().unwrap();
    let env = env(&topics);
    let server = TestServer::start_in(dir.path(), &env);
    let (path, env) = (dir.path(), &env);
    run_with_fault(server, true, |run| async move {
        run.current().kill_hard();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let restarted = TestServer::start_in(path, env);
        *run.server.write().unwrap() = Arc::new(restarted);
    })
    .await;
}
