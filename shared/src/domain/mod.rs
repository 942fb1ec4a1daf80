//! Domain types, parsed once at the edge so nothing past a handler re-checks them.

mod duration;
mod figures;
mod message_id;
mod names;
mod timestamp;

pub use duration::{DurationInput, format_duration_ms, parse_duration_ns};
pub use figures::{Count, Distribution, Figures, Latency, Op, RELATIVE_ERROR};
pub use message_id::MessageId;
pub use names::{MAX_QUEUE_NAME, MAX_ROUTING_KEY, QueueName, RoutingKey, RoutingPattern};
pub use timestamp::Timestamp;

/// Most partitions a queue may have.
pub const MAX_PARTITIONS: u32 = 1024;
