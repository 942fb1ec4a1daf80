//! The dashboard page, loaded by headless Chromium (installed by `infra/chromium.sh` when missing)
//! against a server with traffic: its DOM once the scripts ran, and a screenshot with charts drawn,
//! kept in the target directory.

use std::{path::Path, process::Command};

use reqwest::StatusCode;
use serde_json::json;

use super::{consume::consume, helpers::*, receiver::CallbackReceiver, settle::spec};

/// The Chromium `infra/chromium.sh` finds or installs.
fn chromium() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/chromium.sh");
    let out = Command::new("bash").arg(script).output().expect("infra/chromium.sh runs");
    assert!(out.status.success(), "no Chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs headless Chromium on `url` with `args`, within 60 s, in a profile of its own.
fn headless(browser: &str, url: &str, args: &[&str]) -> Vec<u8> {
    let profile = tempfile::TempDir::new().unwrap();
    let out = Command::new("timeout")
        .args(["60", browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=8000", "--window-size=1280,1800"])
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[tokio::test]
async fn the_dashboard_renders_charts_and_tables_of_live_figures() {
    let browser = chromium();
    let server = TestServer::start_with(&[("MESSAGE_QUEUE_CALLBACK_ALLOW", "127.0.0.1/32")]).await;
    let args = json!({"arguments": {"x-dead-letter-queue": "orders.dead"}});
    assert_eq!(server.put("/message-queue/queues/orders", args).await.0, StatusCode::CREATED);
    let failing = CallbackReceiver::start(&[(500, None), (500, None)]).await;
    let (status, sub) =
        server.post("/message-queue/subscribe", json!({"queue": "orders", "callback_url": failing.url})).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    for i in 0..20 {
        server.publish("orders", json!({"n": i})).await;
    }
    let leased = consume(&server, "orders", "billing", "c", json!({"max_messages": 5})).await;
    let rejected = leased[0]["message_id"].as_str().unwrap();
    let reject = json!({"requeue": false, "group_id": "billing"});
    assert_eq!(spec(&server, rejected, "reject", reject).await.0, StatusCode::OK);
    assert!(failing.wait_for(2).await.len() >= 2, "the callback was not called");

    let url = format!("{}/dashboard#token={}", server.base, server.token);
    let dom = String::from_utf8(headless(&browser, &url, &["--dump-dom"])).unwrap();
    assert!(dom.contains(r#"data-state="ready""#), "the page did not finish: {dom}");
    assert!(dom.contains(r#"data-charts="4""#), "four charts: {dom}");
    assert_eq!(dom.matches("<canvas").count(), 4, "{dom}");
    for shown in ["orders", "orders.dead", "billing", rejected, sub["subscription_id"].as_str().unwrap()] {
        assert!(dom.contains(shown), "{shown} is not on the page: {dom}");
    }
    assert!(dom.contains("delivery_limit") || dom.contains("rejected"), "the dead letter's reason: {dom}");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dashboard-{}.png", crate::LOG));
    headless(&browser, &url, &[&format!("--screenshot={}", shot.display())]);
    let (width, pixels) = rgb(&shot);
    // The charts' lines are drawn in the first series' blue (#2f6fde), give or take antialiasing.
    let blue = pixels.iter().filter(|p| p[0] < 90 && (90..150).contains(&p[1]) && p[2] > 190).count();
    assert!(blue > 300, "{blue} blue pixels: the charts are not drawn ({})", shot.display());
    let background = pixels[width * 300 + 5];
    let drawn = pixels.iter().filter(|p| **p != background).count();
    assert!(drawn * 10 > pixels.len(), "the page is mostly blank ({})", shot.display());
    println!("dashboard screenshot: {}", shot.display());
}

#[tokio::test]
async fn the_page_holds_no_data_and_the_figures_still_need_the_token() {
    let server = TestServer::start().await;
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/uplot.js", "/dashboard/uplot.css"] {
        let answer = server.client.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
    }
    let answer = server.client.get(format!("{}/message-queue/metrics", server.base)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

/// Width and RGB pixels of a PNG.
fn rgb(path: &Path) -> (usize, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let pixels = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width as usize, pixels)
}
