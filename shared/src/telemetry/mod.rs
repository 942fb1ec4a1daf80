//! What the service emits through the `metrics` facade. The entry point installs the recorder:
//! the local server a Prometheus exposition on `METRICS_ADDR`; a Lambda function CloudWatch's
//! embedded metric format ([`emf`]), with no change here. Without a recorder every call is a
//! no-op. Names follow spec 002, under its `message_queue_` prefix.

pub mod emf;

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::{
    domain::{Latency, Op},
    ports::{CounterDelta, Queue, QueueId},
};

pub const PRODUCED: &str = "message_queue_messages_produced_total";
pub const CONSUMED: &str = "message_queue_messages_consumed_total";
pub const FAILED: &str = "message_queue_messages_failed_total";
pub const ACKNOWLEDGED: &str = "message_queue_messages_acknowledged_total";
pub const REQUEUED: &str = "message_queue_messages_requeued_total";
pub const REDELIVERED: &str = "message_queue_messages_redelivered_total";
pub const EXPIRED: &str = "message_queue_messages_expired_total";
pub const ACTIVE_CONSUMERS: &str = "message_queue_active_consumers";
pub const PROCESSING_LATENCY: &str = "message_queue_processing_latency_seconds";
pub const PUBLISH_LATENCY: &str = "message_queue_publish_latency_seconds";
pub const PUSH_ATTEMPTS: &str = "message_queue_push_attempts_total";
pub const OPERATIONS: &str = "message_queue_operations_total";
/// Each [`Latency`]'s histogram, by its position.
pub const LATENCIES: [&str; Latency::ALL.len()] = [
    PUBLISH_LATENCY,
    "message_queue_consume_latency_seconds",
    "message_queue_acknowledge_latency_seconds",
    "message_queue_push_latency_seconds",
    "message_queue_end_to_end_latency_seconds",
];
pub const REQUESTS: &str = "message_queue_http_requests_total";

/// Upper bounds of the latency histograms' buckets, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Describes every metric to the installed recorder (help text in the exposition).
pub fn describe() {
    describe_counter!(PRODUCED, "Messages published and answered (durable), per queue");
    describe_counter!(CONSUMED, "Deliveries leased to consumers and push subscriptions, per queue");
    describe_counter!(FAILED, "Messages that failed: rejected without requeue, or dead-lettered (reason label)");
    describe_counter!(ACKNOWLEDGED, "Deliveries acknowledged, per queue");
    describe_counter!(REQUEUED, "Deliveries released for another attempt, per queue");
    describe_counter!(REDELIVERED, "Leases of a message delivered before, per queue");
    describe_counter!(EXPIRED, "Messages dropped past their TTL, per queue");
    describe_gauge!(ACTIVE_CONSUMERS, "Push subscriptions plus consumers seen in the last minute, per queue");
    describe_histogram!(PROCESSING_LATENCY, metrics::Unit::Seconds, "Time from a request's arrival to its answer");
    let timed = [
        "Time to make a publish durable, per queue",
        "Time a consume call took to lease messages (long-poll waiting left out), per queue",
        "Time to apply an acknowledgement, per queue",
        "Time of one push attempt, request to answer, per queue",
        "Time from publish to acknowledgement, per queue",
    ];
    for (name, help) in LATENCIES.iter().zip(timed) {
        describe_histogram!(*name, metrics::Unit::Seconds, help);
    }
    describe_counter!(PUSH_ATTEMPTS, "Push attempts, per queue and outcome (delivered, failed)");
    describe_counter!(
        OPERATIONS,
        "Publish, consume, acknowledge and reject calls, by outcome (ok, client_error, server_error)"
    );
    describe_counter!(REQUESTS, "Requests answered, by status class (2xx, 4xx, 5xx)");
}

/// A queue's handles, each looked up the first time it records something (a lookup by name and
/// labels on every record cost about a tenth of the publish rate), so a series appears in the
/// exposition once it has counted something.
#[derive(Debug, Default)]
struct QueueHandles {
    name: String,
    latencies: [OnceLock<Histogram>; Latency::ALL.len()],
    /// Counters by metric and label.
    counters: [OnceLock<Counter>; COUNTED.len()],
}

/// The per-queue counters, in [`QueueHandles::counters`]' order.
#[derive(Debug, Clone, Copy)]
enum Counted {
    Produced,
    Consumed,
    Redelivered,
    Acknowledged,
    Requeued,
    Expired,
    Rejected,
    DeadLettered,
    PushDelivered,
    PushFailed,
}

/// Each [`Counted`]'s metric and label, by its position.
const COUNTED: [(&str, Option<(&str, &str)>); 10] = [
    (PRODUCED, None),
    (CONSUMED, None),
    (REDELIVERED, None),
    (ACKNOWLEDGED, None),
    (REQUEUED, None),
    (EXPIRED, None),
    (FAILED, Some(("reason", "rejected"))),
    (FAILED, Some(("reason", "dead_lettered"))),
    (PUSH_ATTEMPTS, Some(("outcome", "delivered"))),
    (PUSH_ATTEMPTS, Some(("outcome", "failed"))),
];

impl QueueHandles {
    fn time(&self, latency: Latency, took: Duration) {
        let name = LATENCIES[latency as usize];
        let histogram = self.latencies[latency as usize].get_or_init(|| histogram!(name, "queue" => self.name.clone()));
        histogram.record(took.as_secs_f64());
    }

    /// Adds `n` to a counter; a zero leaves the series out until it counts something.
    fn add(&self, which: Counted, n: u64) {
        if n == 0 {
            return;
        }
        let (metric, label) = COUNTED[which as usize];
        let counter = self.counters[which as usize].get_or_init(|| match label {
            Some((key, value)) => counter!(metric, "queue" => self.name.clone(), key => value),
            None => counter!(metric, "queue" => self.name.clone()),
        });
        counter.increment(n);
    }
}

/// The handles of queue `id`, named `name()` the first time.
fn handles(id: QueueId, name: impl FnOnce() -> String) -> Arc<QueueHandles> {
    static QUEUES: OnceLock<RwLock<HashMap<QueueId, Arc<QueueHandles>>>> = OnceLock::new();
    let queues = QUEUES.get_or_init(Default::default);
    if let Some(found) = queues.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return found.clone();
    }
    let made = Arc::new(QueueHandles { name: name(), ..QueueHandles::default() });
    queues.write().unwrap_or_else(|p| p.into_inner()).entry(id).or_insert(made).clone()
}

/// One publish answered.
pub fn produced(queue: &Queue, took: Duration) {
    let h = handles(queue.id, || queue.name.to_string());
    h.add(Counted::Produced, 1);
    h.time(Latency::Publish, took);
}

/// One step timed for a queue; `name` is asked only the first time the queue is seen.
pub fn timed(queue: QueueId, name: impl FnOnce() -> String, latency: Latency, took: Duration) {
    handles(queue, name).time(latency, took);
}

/// One push attempt and whether it delivered.
pub fn pushed(queue: &Queue, delivered: bool) {
    let h = handles(queue.id, || queue.name.to_string());
    h.add(if delivered { Counted::PushDelivered } else { Counted::PushFailed }, 1);
}

/// One counted call: `None` when it succeeded, else whether the server failed it.
pub fn operation(op: Op, server_failed: Option<bool>) {
    static HANDLES: OnceLock<[[Counter; 3]; Op::ALL.len()]> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        Op::ALL.map(|op| {
            ["ok", "client_error", "server_error"]
                .map(|outcome| counter!(OPERATIONS, "operation" => op.name(), "outcome" => outcome))
        })
    });
    let outcome = match server_failed {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    handles[op as usize][outcome].increment(1);
}

/// Leases a consume or a push pass took and kept (those screened out and finished are not counted).
pub fn consumed(queue: &Queue, consumed: u64, redelivered: u64) {
    let h = handles(queue.id, || queue.name.to_string());
    h.add(Counted::Consumed, consumed);
    h.add(Counted::Redelivered, redelivered);
}

/// What a settlement or retention changed, as the queue's counters record it (consumed and
/// redelivered come from [`consumed`], once leases are screened); `name` is asked only the
/// first time the queue is seen.
pub fn counted(queue: QueueId, name: impl FnOnce() -> String, delta: &CounterDelta) {
    let h = handles(queue, name);
    // Negative changes (a lease taken back) are left out: a Prometheus counter only grows.
    let positive = |n: i64| u64::try_from(n).unwrap_or(0);
    h.add(Counted::Acknowledged, positive(delta.acknowledged));
    h.add(Counted::Requeued, positive(delta.requeued));
    h.add(Counted::Expired, positive(delta.expired));
    h.add(Counted::Rejected, positive(delta.rejected));
    h.add(Counted::DeadLettered, positive(delta.dead_lettered));
}

/// A queue's active consumers now.
pub fn active_consumers(queue: &str, count: u64) {
    gauge!(ACTIVE_CONSUMERS, "queue" => queue.to_owned()).set(count as f64);
}

/// One request answered. The handles are looked up once, at the first request: the recorder is
/// installed before the entry point serves any.
pub fn answered(status: u16, took: Duration) {
    static HANDLES: OnceLock<([Counter; 4], Histogram)> = OnceLock::new();
    let (classes, latency) = HANDLES.get_or_init(|| {
        let classes = ["2xx", "3xx", "4xx", "5xx"].map(|class| counter!(REQUESTS, "class" => class));
        (classes, histogram!(PROCESSING_LATENCY))
    });
    let class = match status {
        200..=299 => 0,
        300..=399 => 1,
        400..=499 => 2,
        _ => 3,
    };
    classes[class].increment(1);
    latency.record(took.as_secs_f64());
}
