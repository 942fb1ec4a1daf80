//! The black-box suite again, every test server keeping its message log in the SQLite file
//! (`MESSAGE_QUEUE_LOG=store`), the layout for several processes sharing one file.

#![allow(unreachable_pub)]

/// Where every test server keeps its message log (`MESSAGE_QUEUE_LOG`).
const LOG: &str = "store";

/// Whether every test server keeps its state in PostgreSQL (`postgres.rs`).
const POSTGRES: bool = false;

/// Whether every test server keeps its message log on Kafka (`kafka.rs`).
const KAFKA: bool = false;

include!("suite.rs");

mod embedded;
