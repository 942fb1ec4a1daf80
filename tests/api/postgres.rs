//! The black-box suite again, every test server on a PostgreSQL database of its own
//! (`MESSAGE_QUEUE_STORE=postgres://...`): from `infra/postgres.sh`, made and dropped per test.

#![allow(unreachable_pub)]

/// Where every test server keeps its message log (`MESSAGE_QUEUE_LOG`): no matter here.
const LOG: &str = "files";

/// Whether every test server keeps its state in PostgreSQL.
const POSTGRES: bool = true;

/// Whether every test server keeps its message log on Kafka (`kafka.rs`).
const KAFKA: bool = false;

include!("suite.rs");

mod instances;

mod faults;
mod ledger;
mod vacuum;
