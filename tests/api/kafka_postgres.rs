//! The black-box suite again, every test server's message log on Kafka and every other port on
//! a PostgreSQL database of its own: the self-hosted deployment of many instances.

#![allow(unreachable_pub)]

/// Where a test server would keep its log without Kafka (`MESSAGE_QUEUE_LOG`): no matter here.
const LOG: &str = "files";

/// Whether every test server keeps its state in PostgreSQL.
const POSTGRES: bool = true;

/// Whether every test server keeps its message log on Kafka.
const KAFKA: bool = true;

include!("suite.rs");
