//! JSON blocks that queue status, topic info, health and the metrics report share.

use serde_json::{Value, json};

use crate::{
    domain::{Distribution, Latency, format_duration_ms},
    ops::{GroupLag, QueueStatus, Window},
    ports::GroupRef,
};

/// Averages and percentiles of each timed step over a window, the window stated.
pub(super) fn performance_json(w: &Window) -> Value {
    let mut out = serde_json::Map::new();
    for latency in Latency::ALL {
        let d: Distribution = w.figures.distribution(*latency);
        let name = latency.name();
        out.insert(format!("average_{name}_time"), ms(d.mean_ms).into());
        out.insert(format!("p50_{name}_time"), ms(d.p50_ms).into());
        out.insert(format!("p95_{name}_time"), ms(d.p95_ms).into());
        out.insert(format!("p99_{name}_time"), ms(d.p99_ms).into());
        out.insert(format!("max_{name}_time"), ms(d.max_ms).into());
        out.insert(format!("{name}_count"), d.count.into());
    }
    out.insert("throughput_per_second".into(), w.throughput_per_second().into());
    out.insert("error_rate".into(), w.error_rate().into());
    out.insert("window".into(), json!({"from": w.from, "to": w.to, "seconds": w.seconds()}));
    Value::Object(out)
}

/// Each delivery group's lag: messages it has not finished, and the age of the oldest.
pub(super) fn groups_json(s: &QueueStatus) -> Vec<Value> {
    let group = |l: &GroupLag| {
        let g = l.group.as_ref()?;
        let kind = match g {
            GroupRef::Consumers(_) => "consumer_group",
            GroupRef::Subscription(_) => "subscription",
        };
        Some(json!({
            "group": g.name(),
            "kind": kind,
            "lag": l.messages,
            "lag_seconds": l.seconds(s.measured_at),
            "leased": l.leased,
        }))
    };
    s.lags.iter().filter_map(group).collect()
}

/// A duration in milliseconds as the specs write it (`12.5ms`).
pub(super) fn ms(v: f64) -> String {
    format_duration_ms(v)
}
