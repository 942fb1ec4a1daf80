//! Domain types, parsed once at the edge so nothing past a handler re-checks them.

mod duration;
mod message_id;
mod names;
mod timestamp;

pub use duration::{format_duration_ms, parse_duration_ns, DurationInput};
pub use message_id::MessageId;
pub use names::{QueueName, RoutingKey, RoutingPattern, MAX_QUEUE_NAME, MAX_ROUTING_KEY};
pub use timestamp::Timestamp;
