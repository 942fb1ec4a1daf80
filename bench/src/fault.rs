//! The fault check: clients publish at a steady rate, the server is killed with
//! SIGKILL mid-run and restarted on the same file, publishing goes on; then
//! the ledger must balance: every id answered 2xx is readable and consumable,
//! none is delivered to a group after it was acknowledged, none is lost.

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::Mutex;

use crate::server::{Server, token};

const CLIENTS: usize = 6;
const PER_SECOND_PER_CLIENT: u64 = 200;

pub(crate) async fn run() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Arc::new(Mutex::new(Server::service(dir.path())?));
    let base = Arc::new(Mutex::new(server.lock().await.base.clone()));
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let clients: Vec<_> =
        (0..CLIENTS).map(|c| tokio::spawn(publish_steadily(c, base.clone(), answered.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = answered.lock().await.len();
    server.lock().await.kill();
    eprintln!("killed the server after {before} answered publishes");
    let restarted = Server::service(dir.path())?;
    *base.lock().await = restarted.base.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.notify_waiters();
    for c in clients {
        c.await.map_err(|e| e.to_string())?;
    }
    let answered = answered.lock().await.clone();
    eprintln!("{} publishes answered 2xx in all", answered.len());
    prove(&restarted.base, &answered).await
}

/// Publishes at a steady rate; an id is recorded only when the answer was 2xx.
async fn publish_steadily(
    client_no: usize,
    base: Arc<Mutex<String>>,
    answered: Arc<Mutex<HashSet<String>>>,
    stop: Arc<tokio::sync::Notify>,
) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND_PER_CLIENT));
    let stopped = stop.notified();
    tokio::pin!(stopped);
    for i in 0u64.. {
        tokio::select! {
            () = &mut stopped => return,
            _ = tick.tick() => {}
        }
        let url = format!("{}/message-queue/publish", base.lock().await);
        let body = json!({"queue": "fault", "message": {"client": client_no, "i": i}});
        let Ok(resp) = client.post(url).bearer_auth(token()).json(&body).send().await else { continue };
        if resp.status().is_success()
            && let Ok(v) = resp.json::<serde_json::Value>().await
            && let Some(id) = v["message_id"].as_str()
        {
            answered.lock().await.insert(id.to_owned());
        }
    }
}

/// Reads every answered id back, consumes and acknowledges all, and checks nothing comes back.
async fn prove(base: &str, answered: &HashSet<String>) -> Result<(), String> {
    let client = reqwest::Client::new();
    let mut unreadable = 0;
    for id in answered {
        let resp = client.get(format!("{base}/message-queue/messages/{id}")).bearer_auth(token()).send().await;
        if !resp.is_ok_and(|r| r.status().is_success()) {
            unreadable += 1;
        }
    }
    let mut delivered = HashSet::new();
    let mut redelivered_after_ack = 0;
    loop {
        let body = json!({"topic": "fault", "group_id": "ledger", "consumer_id": "prover", "max_messages": 100});
        let resp = client.post(format!("{base}/api/v1/messages/consume")).bearer_auth(token()).json(&body).send().await;
        let got: serde_json::Value = resp.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        let messages = got["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let id = m["message_id"].as_str().unwrap_or_default().to_owned();
            if !delivered.insert(id.clone()) {
                redelivered_after_ack += 1;
            }
            let ack = json!({"message_id": id, "topic": "fault", "success": true, "group_id": "ledger"});
            client
                .post(format!("{base}/api/v1/messages/acknowledge"))
                .bearer_auth(token())
                .json(&ack)
                .send()
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let lost = answered.iter().filter(|id| !delivered.contains(*id)).count();
    println!(
        "fault check: answered {}, unreadable {unreadable}, delivered {}, lost {lost}, delivered again after ack {redelivered_after_ack}",
        answered.len(),
        delivered.len()
    );
    if answered.is_empty() || unreadable > 0 || lost > 0 || redelivered_after_ack > 0 {
        println!("fault-check: 0 passed, 1 failed");
        return Err("the ledger does not balance".into());
    }
    println!("fault-check: 1 passed, 0 failed");
    Ok(())
}
