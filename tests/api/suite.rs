// The black-box suite's modules; included by `main.rs`, `store.rs` and `postgres.rs`, each setting
// `LOG` and `POSTGRES`.

mod admin;
mod auth;
mod bad_input;
mod callbacks;
mod cli;
mod connections;
mod consume;
mod consumers;
mod dashboard;
mod dead_letters;
mod durability;
mod health;
mod helpers;
mod logs;
mod metrics;
#[cfg(feature = "profiling")]
mod profiling;
mod prometheus;
mod publish;
mod push;
mod receiver;
mod seeds;
mod settle;
mod topics;
