//! The figures recorded through `shared::telemetry` come out as CloudWatch embedded metric format
//! documents once the EMF recorder is installed (its own test binary: a recorder is process-wide).

use std::time::Duration;

use serde_json::Value;
use shared::{
    domain::{Latency, Op, QueueName, Timestamp},
    ports::{Queue, QueueArguments, QueueSettings},
    telemetry,
};

#[test]
fn figures_recorded_through_the_facade_come_out_as_emf_documents() {
    let collector = telemetry::emf::install("publish").expect("the recorder installs");
    let settings = QueueSettings {
        durable: true,
        auto_delete: false,
        exclusive: false,
        arguments: QueueArguments::default(),
        partitions: 1,
        replication: 1,
        retention_ms: None,
        max_bytes: None,
    };
    let name = QueueName::parse("emf.orders").expect("a queue name");
    let queue = Queue { id: 7, name, settings, owner: None, created_at: Timestamp(0), updated_at: Timestamp(0) };
    telemetry::produced(&queue, Duration::from_millis(3));
    telemetry::produced(&queue, Duration::from_millis(5));
    telemetry::timed(queue.id, || unreachable!("named by the publish"), Latency::EndToEnd, Duration::from_secs(2));
    telemetry::operation(Op::Publish, None);

    let mut out = Vec::new();
    collector.flush(&mut out).expect("flushes");
    let docs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON document"))
        .collect();
    let doc = docs
        .iter()
        .find(|d| d["queue"] == "emf.orders" && d.get(telemetry::PRODUCED).is_some())
        .unwrap_or_else(|| panic!("no document of the queue: {docs:?}"));
    assert_eq!(doc[telemetry::PRODUCED], 2, "{doc}");
    assert_eq!(doc["function"], "publish", "{doc}");
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], telemetry::emf::NAMESPACE, "{doc}");
    let named: Vec<&str> =
        directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
    assert!(named.contains(&telemetry::PRODUCED), "{doc}");
    let latencies = &doc[telemetry::PUBLISH_LATENCY];
    assert_eq!(latencies.as_array().map(Vec::len), Some(2), "both publish times: {doc}");
    let end_to_end = docs.iter().find_map(|d| d.get("message_queue_end_to_end_latency_seconds"));
    assert!(end_to_end.is_some(), "{docs:?}");
    let ops = docs.iter().find(|d| d["operation"] == "publish" && d["outcome"] == "ok");
    assert_eq!(ops.map(|d| &d[telemetry::OPERATIONS]), Some(&Value::from(1)), "{docs:?}");
}
