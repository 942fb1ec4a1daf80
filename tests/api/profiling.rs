//! CPU profiles on `PPROF_ADDR`: a gzipped pprof protobuf of the server under load, one at a time.

use std::io::Read;

use pprof::protos::{Message, Profile};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

#[tokio::test]
async fn a_profile_of_a_busy_server_decodes_and_names_its_functions() {
    let server = TestServer::start().await;
    let url = server.pprof.clone().expect("the server serves profiles");
    let take = |seconds: u64| {
        let (client, url) = (server.client.clone(), url.clone());
        tokio::spawn(async move { client.get(format!("{url}?seconds={seconds}")).send().await.unwrap() })
    };
    // Two profiles asked for at once: one is taken, the other refused.
    let long = take(3);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let short = take(1);
    // Publishes, and requests the service refuses after reading them whole (a queue name with a
    // space): the refusals keep its own code busy whatever the backend's round trips cost. The
    // load lasts until the profile is answered, however slowly a busy machine runs the server.
    let refused = json!({"queue": "not a name", "message": {"pad": "x".repeat(512)}});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(long.is_finished() && short.is_finished()) && std::time::Instant::now() < deadline {
        server.publish("profiled", json!({"pad": "x".repeat(512)})).await;
        for _ in 0..20 {
            let (status, _) = server.post("/message-queue/publish", refused.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }
    let (long, short) = (long.await.unwrap(), short.await.unwrap());
    let mut statuses = [long.status(), short.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (answer, refused) = if long.status() == StatusCode::OK { (long, short) } else { (short, long) };
    let (_, busy) = read(refused).await;
    assert_eq!(busy["error"], "conflict", "{busy}");
    let gz = answer.bytes().await.unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut raw).expect("gzip");
    let profile = Profile::decode(raw.as_slice()).expect("a pprof protobuf");
    assert!(!profile.sample.is_empty(), "no samples");
    let sample_type = &profile.string_table[profile.sample_type[0].ty as usize];
    assert_eq!(sample_type, "samples");
    assert!(profile.string_table.iter().any(|s| s.contains("shared::")), "no function of the service was sampled");
}

#[tokio::test]
async fn a_bad_length_is_refused_and_off_serves_nothing() {
    let server = TestServer::start().await;
    let url = server.pprof.clone().expect("the server serves profiles");
    for bad in ["0", "301", "soon"] {
        let (status, body) = read(server.client.get(format!("{url}?seconds={bad}")).send().await.unwrap()).await;
        assert_eq!(assert_error(status, &body, 400, "invalid_request")["field"], "seconds", "{body}");
    }
    let off = TestServer::start_with(&[("PPROF_ADDR", "off")]).await;
    assert_eq!(off.pprof, None);
    let (status, _): (StatusCode, Value) = off.get("/message-queue/health").await;
    assert_eq!(status, StatusCode::OK);
}
