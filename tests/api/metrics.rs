//! The metrics reports (`GET /message-queue/metrics`, `GET /api/v1/metrics`) answer for every
//! process: two servers share one store, traffic goes through both, and each one's report
//! counts all of it exactly, with percentiles within the histograms' error of what this client
//! measured.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::domain::{RELATIVE_ERROR, Timestamp};

use super::{
    consume::{consume, ids, try_consume},
    helpers::*,
    settle::spec,
};

/// Two processes on one data directory, the log in the SQLite file they share, flushing often.
fn pair(dir: &std::path::Path) -> (TestServer, TestServer) {
    let env = [("MESSAGE_QUEUE_LOG", "store"), ("MESSAGE_QUEUE_STATS_FLUSH", "100ms")];
    (TestServer::start_in(dir, &env), TestServer::start_in(dir, &env))
}

fn epoch_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

/// Milliseconds in a duration the service wrote (`"12.5ms"`).
fn ms(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.strip_suffix("ms")).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{v}"))
}

/// The `q` quantile as the histograms define it: the `ceil(q * n)`-th smallest.
fn nth(sorted: &[f64], q: f64) -> f64 {
    let k = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[k - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[tokio::test]
async fn two_processes_report_all_traffic_exactly_through_both_endpoints() {
    let dir = tempfile::TempDir::new().unwrap();
    let (a, b) = pair(dir.path());
    let began = epoch_ms();
    // 10 publishes, half through each process, timed by this client.
    let mut publish_ms = Vec::new();
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        let sent = Instant::now();
        server.publish("counted", json!({"n": i})).await;
        publish_ms.push(elapsed_ms(sent));
    }
    let sent = Instant::now();
    let first = ids(&consume(&a, "counted", "g", "c1", json!({})).await);
    let mut consume_ms = elapsed_ms(sent);
    assert_eq!(first.len(), 10);
    // 4 acknowledged, 3 rejected for good, 2 requeued, 1 left leased.
    for (i, id) in first[..4].iter().enumerate() {
        let server = if i % 2 == 0 { &a } else { &b };
        assert_eq!(spec(server, id, "acknowledge", json!({"group_id": "g"})).await.0, StatusCode::OK);
    }
    for id in &first[4..7] {
        assert_eq!(spec(&b, id, "reject", json!({"group_id": "g", "requeue": false})).await.0, StatusCode::OK);
    }
    for id in &first[7..9] {
        assert_eq!(spec(&a, id, "reject", json!({"group_id": "g", "requeue": true})).await.0, StatusCode::OK);
    }
    // The two requeued come back as redeliveries and are acknowledged.
    let sent = Instant::now();
    let again = ids(&consume(&b, "counted", "g", "c2", json!({"timeout": "1s"})).await);
    consume_ms = consume_ms.max(elapsed_ms(sent));
    assert_eq!(again.len(), 2, "{again:?}");
    for id in &again {
        assert_eq!(spec(&a, id, "acknowledge", json!({"group_id": "g"})).await.0, StatusCode::OK);
    }
    // Refused calls: a reject of a finished message (on the queue), a consume of a missing queue
    // and an acknowledgement of an unknown message (on no queue).
    assert_eq!(spec(&b, &first[0], "reject", json!({"group_id": "g"})).await.0, StatusCode::CONFLICT);
    assert_eq!(try_consume(&a, "missing", "g", "c", json!({})).await.0, StatusCode::NOT_FOUND);
    let unknown = "msg_0000000000";
    assert!(spec(&b, unknown, "acknowledge", json!({})).await.0.is_client_error());
    // Three that expire unconsumed.
    for _ in 0..3 {
        let (status, body) = b.post("/message-queue/publish", json!({"queue": "short", "message": 1, "ttl": 1})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(consume(&a, "short", "g", "c1", json!({})).await.is_empty());
    // Both processes flush every 100 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let range = format!("date_from={}&date_to={}", at(began - 1_000), at(epoch_ms() + 1_000));
    let v1_range = format!("start_time={}&end_time={}", at(began - 1_000), at(epoch_ms() + 1_000));
    for (server, path) in [(&a, format!("/message-queue/metrics?{range}")), (&b, format!("/api/v1/metrics?{v1_range}"))] {
        let (status, report) = server.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let counted = queue(&report, "counted");
        let want = json!({
            "messages_published": 10, "messages_consumed": 12, "messages_acknowledged": 6,
            "messages_rejected": 3, "messages_requeued": 2, "messages_redelivered": 2,
            "messages_expired": 0, "message_count": 1,
        });
        super::consume::assert_fields(counted, want);
        super::consume::assert_fields(
            queue(&report, "short"),
            json!({"messages_published": 3, "messages_expired": 3, "messages_consumed": 0}),
        );
        super::consume::assert_fields(&report["overview"], json!({"total_queues": 2, "total_messages": 13}));
        let errors = &report["error_rates"]["errors"];
        assert_eq!(errors["publish"], json!({"calls": 13, "client_errors": 0, "server_errors": 0}), "{report}");
        assert_eq!(errors["consume"], json!({"calls": 4, "client_errors": 1, "server_errors": 0}), "{report}");
        assert_eq!(errors["acknowledge"], json!({"calls": 7, "client_errors": 1, "server_errors": 0}), "{report}");
        assert_eq!(errors["reject"], json!({"calls": 6, "client_errors": 1, "server_errors": 0}), "{report}");
        assert_eq!(report["error_rates"]["reject_errors"], json!(1.0 / 6.0), "{report}");
        // Every server-side publish time is within its client-side one: so is each order statistic.
        let perf = &counted["performance"];
        let client = sorted(publish_ms.clone());
        for (q, field) in [(0.5, "p50_publish_time"), (0.95, "p95_publish_time"), (0.99, "p99_publish_time")] {
            let server_ms = ms(&perf[field]);
            assert!(server_ms > 0.0 && server_ms <= nth(&client, q) * (1.0 + RELATIVE_ERROR), "{field}: {perf}");
        }
        assert!(ms(&perf["p99_consume_time"]) <= consume_ms * (1.0 + RELATIVE_ERROR), "{perf}");
        assert_eq!(perf["publish_count"], 10, "{perf}");
    }
    // A range that covers none of it answers zeros, not an error.
    let before = format!("date_from={}&date_to={}", at(began - 3_600_000), at(began - 60_000));
    let (status, report) = b.get(&format!("/message-queue/metrics?{before}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    super::consume::assert_fields(
        queue(&report, "counted"),
        json!({"messages_published": 0, "messages_consumed": 0, "message_count": 1}),
    );
    assert_eq!(report["overview"]["total_messages"], 0, "{report}");
}

#[tokio::test]
async fn a_batch_acknowledgement_times_each_message_once() {
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_STATS_FLUSH", "100ms")]).await;
    let began = epoch_ms();
    for i in 0..5 {
        server.publish("batch-timed", json!({"n": i})).await;
    }
    let (status, got) = server
        .post("/api/v1/messages/consume", json!({"topic": "batch-timed", "group_id": "g", "consumer_id": "c", "max_messages": 5}))
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let acks = receipts(&got);
    assert_eq!(acks.len(), 5);
    let body = json!({"messages": acks, "topic": "batch-timed", "success": true, "group_id": "g"});
    for _ in 0..2 {
        // The second time repeats every acknowledgement: answered, not timed again.
        let (status, answer) = server.post("/api/v1/messages/acknowledge", body.clone()).await;
        assert_eq!((status, &answer["succeeded"]), (StatusCode::OK, &json!(5)), "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let range = format!("queue=batch-timed&date_from={}&date_to={}", at(began - 1_000), at(epoch_ms() + 1_000));
    let (status, report) = server.get(&format!("/message-queue/metrics?{range}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["performance"]["end_to_end_count"], 5, "{report}");
}

#[tokio::test]
async fn end_to_end_percentiles_merge_both_processes_acknowledgements() {
    let dir = tempfile::TempDir::new().unwrap();
    let (a, b) = pair(dir.path());
    let began = epoch_ms();
    let n = 20;
    // (publish sent, publish answered) per message, in publish order.
    let mut published = Vec::new();
    for i in 0..n {
        let sent = Instant::now();
        let id = a.publish("timed", json!({"n": i})).await;
        published.push((id, sent, Instant::now()));
    }
    let leased = ids(&consume(&b, "timed", "g", "c", json!({"max_messages": n})).await);
    assert_eq!(leased.len(), n);
    // Message i is acknowledged about 40 ms * (i + 1) after its publish, alternately through a
    // and b; its time end to end lies between these bounds.
    let (mut lower, mut upper) = (Vec::new(), Vec::new());
    for (i, (id, pub_sent, pub_answered)) in published.iter().enumerate() {
        let due = *pub_answered + Duration::from_millis(40 * (i as u64 + 1));
        tokio::time::sleep_until(due.into()).await;
        let server = if i % 2 == 0 { &a } else { &b };
        let ack_sent = Instant::now();
        let (status, body) = spec(server, id, "acknowledge", json!({"group_id": "g"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        lower.push((ack_sent - *pub_answered).as_secs_f64() * 1000.0 - 1.0);
        upper.push(pub_sent.elapsed().as_secs_f64() * 1000.0 + 1.0);
    }
    // Both processes flush every 100 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let range = format!("queue=timed&date_from={}&date_to={}", at(began - 1_000), at(epoch_ms() + 1_000));
    let (status, report) = a.get(&format!("/message-queue/metrics?{range}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let perf = &report["performance"];
    assert_eq!(perf["end_to_end_count"], n, "{perf}");
    let (lower, upper) = (sorted(lower), sorted(upper));
    for (q, field) in [(0.5, "p50_end_to_end_time"), (0.95, "p95_end_to_end_time"), (0.99, "p99_end_to_end_time")] {
        let got = ms(&perf[field]);
        let (lo, hi) = (nth(&lower, q) * (1.0 - RELATIVE_ERROR), nth(&upper, q) * (1.0 + RELATIVE_ERROR));
        assert!((lo..=hi).contains(&got), "{field} {got} not in {lo}..={hi}: {perf}");
    }
}

#[tokio::test]
async fn a_bad_range_or_missing_queue_is_refused_in_the_error_shape() {
    let server = TestServer::start().await;
    server.publish("known", json!(1)).await;
    let (status, body) = server.get("/message-queue/metrics?date_from=yesterday").await;
    assert_eq!(assert_error(status, &body, 400, "invalid_request")["field"], "date_from", "{body}");
    let (status, body) =
        server.get("/api/v1/metrics?start_time=2024-01-02T00:00:00Z&end_time=2024-01-01T00:00:00Z").await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = server.get("/message-queue/metrics?queue=nowhere").await;
    assert_error(status, &body, 404, "queue_not_found");
    let (status, body) = server.get("/api/v1/metrics?topic=nowhere").await;
    assert_error(status, &body, 404, "topic_not_found");
    let (status, body) = server.get("/message-queue/metrics?date_from=2024-01-31").await;
    assert_error(status, &body, 400, "invalid_request");
    let (status, body) = server.get("/message-queue/metrics?queue=known&date_from=2024-01-31&date_to=2024-01-31").await;
    assert_eq!(status, StatusCode::OK, "a date is its whole day: {body}");
    assert_eq!((&body["date_from"], &body["date_to"]), (&json!("2024-01-31T00:00:00.000Z"), &json!("2024-02-01T00:00:00.000Z")));
    let (status, body) = server.call(reqwest::Method::GET, "/message-queue/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unauthenticated = server.client.get(format!("{}/api/v1/metrics", server.base)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

fn queue<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queue_metrics"]
        .as_array()
        .and_then(|all| all.iter().find(|q| q["queue"] == name))
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[tokio::test]
async fn queue_status_and_topic_info_show_each_groups_lag_and_the_oldest_age() {
    let server = TestServer::start().await;
    for i in 0..3 {
        server.publish("lagging", json!({"n": i})).await;
    }
    let (_, idle) = server.get("/message-queue/queues/lagging").await;
    assert_eq!(idle["groups"], json!([]), "{idle}");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // `slow` leases one of three; `done` takes all three and acknowledges them.
    assert_eq!(consume(&server, "lagging", "slow", "c", json!({"max_messages": 1})).await.len(), 1);
    for id in ids(&consume(&server, "lagging", "done", "c", json!({})).await) {
        assert_eq!(spec(&server, &id, "acknowledge", json!({"group_id": "done"})).await.0, StatusCode::OK);
    }
    let (status, queue) = server.get("/message-queue/queues/lagging").await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let groups = queue["groups"].as_array().unwrap();
    let group = |name: &str| groups.iter().find(|g| g["group"] == name).unwrap_or_else(|| panic!("{queue}"));
    super::consume::assert_fields(group("slow"), json!({"kind": "consumer_group", "lag": 3, "leased": 1}));
    super::consume::assert_fields(group("done"), json!({"lag": 0, "leased": 0, "lag_seconds": 0.0}));
    let slow_age = group("slow")["lag_seconds"].as_f64().unwrap();
    assert!((1.2..30.0).contains(&slow_age), "{queue}");
    assert_eq!(queue["oldest_unacknowledged_age_seconds"], group("slow")["lag_seconds"], "{queue}");
    assert_eq!(queue["statistics"]["window"]["from"], queue["created_at"], "{queue}");
    let (status, topic) = server.get("/api/v1/topics/lagging").await;
    assert_eq!(status, StatusCode::OK, "{topic}");
    let lags: Vec<(&str, u64)> = topic["consumer_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["group"].as_str().unwrap(), g["lag"].as_u64().unwrap()))
        .collect();
    assert_eq!(lags, [("done", 0), ("slow", 3)], "{topic}");
    assert_eq!(topic["statistics"]["messages_acknowledged"], 3, "{topic}");
    assert_eq!(topic["performance"]["publish_count"], 3, "{topic}");
}

#[tokio::test]
async fn an_interval_splits_the_range_into_steps_that_add_up_to_it() {
    let server = TestServer::start().await;
    let began = epoch_ms();
    for i in 0..6 {
        server.publish("stepped", json!({"n": i})).await;
    }
    let range = format!("date_from={}&date_to={}", at(began - 60_000), at(epoch_ms() + 1_000));
    let (status, report) = server.get(&format!("/message-queue/metrics?{range}&interval=10s")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let series = &queue(&report, "stepped")["series"];
    assert_eq!(series["interval_seconds"], 10.0, "{series}");
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 7, "61 s in steps of 10 s: {series}");
    assert_eq!(points.iter().map(|p| p["published"].as_u64().unwrap()).sum::<u64>(), 6, "{series}");
    assert_eq!(points[0]["from"], report["date_from"], "{series}");
    let all: u64 = report["series"]["points"].as_array().unwrap().iter().map(|p| p["published"].as_u64().unwrap()).sum();
    assert_eq!(all, 6, "{report}");
    let (status, plain) = server.get(&format!("/api/v1/metrics?start_time={}", at(began - 60_000))).await;
    assert_eq!((status, plain.get("series")), (StatusCode::OK, None), "no interval, no series: {plain}");
    for bad in ["0s", "1ms", "soon"] {
        let (status, body) = server.get(&format!("/message-queue/metrics?{range}&interval={bad}")).await;
        assert_eq!(assert_error(status, &body, 400, "invalid_request")["field"], "interval", "{bad}: {body}");
    }
}
