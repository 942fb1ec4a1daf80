//! The message-queue service: everything but the `main` functions.
//!
//! - [`domain`]: parsed types (queue names, message ids, durations, timestamps).
//! - [`callback`]: which callback addresses subscriptions may use.
//! - [`clock`]: the time source, injectable for tests.
//! - [`config`]: typed configuration from the environment.
//! - [`error`]: the one error type and its mapping to status and code.
//! - [`auth`]: bearer-token verification.
//! - [`ports`]: the storage traits every backend implements.
//! - [`embedded`]: the SQLite backend behind every port (the default; feature `sqlite`).
//! - [`postgres`]: every port on PostgreSQL, shared by many instances (feature `postgres`).
//! - [`ops`]: the operations, framework-free.
//! - [`telemetry`]: counters and histograms through the `metrics` facade (Prometheus locally).
//! - [`routing`]: routing-key patterns and header matching.
//! - [`dispatch`]: push delivery to subscription callbacks.
//! - [`segments`]: the message log in append-only segment files (the embedded default's log).
//! - [`http`]: the axum router for both API families.
//! - [`app`]: building the service from configuration, backends chosen by URL.

pub mod app;
pub mod auth;
pub mod callback;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod domain;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqlite")]
pub mod embedded;
pub mod error;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod ops;
pub mod ports;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod routing;
pub mod segments;
pub mod telemetry;
