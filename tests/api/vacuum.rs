//! The service vacuums the delivery table itself once dead rows outnumber live ones, whether or
//! not the server's autovacuum runs (here it is turned off for the table).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

#[tokio::test]
async fn finished_deliveries_are_vacuumed_away_without_autovacuum() {
    let server = TestServer::start().await;
    let url = server.store.clone().expect("the PostgreSQL suite gives a store");
    let (db, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connects");
    tokio::spawn(connection);
    db.batch_execute("ALTER TABLE message_leases SET (autovacuum_enabled = false)").await.unwrap();
    // 1,500 deliveries finished: 1,500 dead lease rows, none live.
    let items: Vec<_> = (0..500).map(|i| json!({"topic": "churn", "content": format!("m{i}")})).collect();
    for _ in 0..3 {
        let (status, answer) = server.post("/api/v1/messages/batch", json!({"messages": items})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let mut finished = 0;
    while finished < 1500 {
        let body = json!({"topic": "churn", "group_id": "g", "consumer_id": "c", "max_messages": 100});
        let (status, got) = server.post("/api/v1/messages/consume", body).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        let acks = receipts(&got);
        assert!(!acks.is_empty(), "all 1,500 delivered ({finished} so far)");
        let body = json!({"messages": acks, "topic": "churn", "success": true, "group_id": "g"});
        let (status, answer) = server.post("/api/v1/messages/acknowledge", body).await;
        assert_eq!((status, &answer["failed"]), (StatusCode::OK, &json!(0)), "{answer}");
        finished += acks.len();
    }
    // The pass runs every 10 s; the server's statistics reach it within a second or so.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let row = db
            .query_one("SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'message_leases'", &[])
            .await
            .unwrap();
        let (vacuums, dead): (i64, i64) = (row.get(0), row.get(1));
        if vacuums > 0 && dead < 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "no vacuum within 40 s: {vacuums} vacuums, {dead} dead rows");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
