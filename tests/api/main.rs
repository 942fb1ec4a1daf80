//! Black-box HTTP tests: each starts the real server binary on 127.0.0.1:0
//! with a fresh data directory and talks to it through a real HTTP client.

#![allow(unreachable_pub)]

/// Where every test server keeps its message log (`MESSAGE_QUEUE_LOG`): the default here;
/// `store.rs` runs the same suite with the log in the SQLite file.
const LOG: &str = "files";

/// Whether every test server keeps its state in PostgreSQL (`postgres.rs`).
const POSTGRES: bool = false;

/// Whether every test server keeps its message log on Kafka (`kafka.rs`).
const KAFKA: bool = false;

include!("suite.rs");

mod embedded;
