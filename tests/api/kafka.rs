//! The black-box suite again, every test server's message log on Kafka (`KAFKA_BROKERS`): a
//! topic prefix of its own per data directory, on a broker of its own where `infra/kafka.sh`
//! runs tansu. Every other port stays in the embedded store.

#![allow(unreachable_pub)]

/// Where a test server would keep its log without Kafka (`MESSAGE_QUEUE_LOG`): no matter here.
const LOG: &str = "files";

/// Whether every test server keeps its state in PostgreSQL (`kafka_postgres.rs`).
const POSTGRES: bool = false;

/// Whether every test server keeps its message log on Kafka.
const KAFKA: bool = true;

include!("suite.rs");

mod kafka_faults;
mod kafka_limits;
mod ledger;
