//! The side-by-side table: each workload on the service and on each peer, with the
//! service's figure divided by the peer's.

use crate::figures::{Figures, figure};

const PEERS: [&str; 2] = [super::rabbit::NAME, super::nats::NAME];
/// Beside each peer's name: how its answer compares with the service's (on disk before it answers).
const DURABILITY: [&str; 2] = [super::rabbit::DURABILITY, super::nats::DURABILITY];

/// Prints the table (Markdown), then the baseline's figures that price HTTP and the JWT.
pub(crate) fn print(service: &Figures, peers: &Figures, open_loop: &str) {
    let mut header = "| workload | service |".to_owned();
    let mut rule = "|---|---:|".to_owned();
    for (peer, durability) in PEERS.iter().zip(DURABILITY) {
        header.push_str(&format!(" {peer} ({durability}) | service ÷ {peer} |"));
        rule.push_str("---:|---:|");
    }
    println!("\n{header}\n{rule}");
    for (label, ours, theirs) in rows(open_loop) {
        let Some(ours_value) = service.median(&ours) else { continue };
        let mut line = format!("| {label} | {} |", figure(ours_value));
        for peer in PEERS {
            match peers.median(&format!("{peer}: {theirs}")) {
                Some(v) if v > 0.0 => line.push_str(&format!(" {} | {:.2}x |", figure(v), ours_value / v)),
                Some(v) => line.push_str(&format!(" {} | |", figure(v))),
                None => line.push_str(" not run | |"),
            }
        }
        println!("{line}");
    }
    let at = |name: &str| service.median(name).map_or("not run".to_owned(), figure);
    println!(
        "\nbaseline handler (HTTP and JSON, no storage) at 64 connections: {} requests/s, {} µs of server CPU each; \
         with the service's JWT check: {} requests/s",
        at("baseline, 64 connections"),
        at("baseline, server CPU µs per request, 64 connections"),
        at("baseline with a JWT check, 64 connections"),
    );
}

/// (row label, the service's figure, the peers' figure after `"{peer}: "`).
fn rows(open_loop: &str) -> Vec<(String, String, String)> {
    let row = |label: &str, ours: String, theirs: &str| (label.to_owned(), ours, theirs.to_owned());
    let mut rows = Vec::new();
    for n in [1, 16, 64] {
        rows.push(row(
            &format!("publish 1 KB, {n} in flight, msg/s"),
            format!("publish 1 KB, {n} connections"),
            &format!("publish 1 KB, {n} in flight"),
        ));
    }
    rows.push(row(
        "publish 1 KB, 64 in flight, p99 ms",
        "publish 1 KB, 64 connections, p99 ms".into(),
        "publish 1 KB, 64 in flight, p99 ms",
    ));
    rows.push(row(
        "server CPU µs per publish, 64 in flight",
        "server CPU µs per publish, 64 connections".into(),
        "server CPU µs per publish, 64 in flight",
    ));
    rows.push(row(
        "batches of 100 × 1 KB, 16 in flight, msg/s (ours: the batch endpoint; peers: 100 pipelined publishes)",
        "batch publish 100 × 1 KB, 16 connections, msg/s".into(),
        "batch 100 × 1 KB, 16 in flight, msg/s",
    ));
    for (ours, acks) in [
        ("one acknowledge per message", "an acknowledge request per message"),
        ("one acknowledge per batch", "one acknowledge request per 10"),
    ] {
        rows.push(row(
            &format!("consume+ack, 4 consumers, msg/s (ours: max_messages 10, {acks}; peers: prefetch 10, an ack per message)"),
            format!("consume+ack, max_messages 10, {ours}, 4 consumers, msg/s"),
            "consume+ack, 4 consumers, msg/s",
        ));
    }
    for q in ["p50", "p99", "p99.9"] {
        rows.push(row(&format!("{open_loop}: {q} ms"), format!("{open_loop}: {q} ms"), &format!("open loop: {q} ms")));
    }
    rows.push(row("server RSS before, MB", "RSS idle, MB".into(), "RSS before, MB"));
    rows.push(row("server RSS after, MB", "RSS after the open-loop run, MB".into(), "RSS after, MB"));
    rows
}
