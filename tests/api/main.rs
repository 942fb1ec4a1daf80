//! Black-box HTTP tests: each starts the real server binary on 127.0.0.1:0
//! with a fresh data directory and talks to it through a real HTTP client.

#![allow(unreachable_pub)]

mod admin;
mod auth;
mod bad_input;
mod callbacks;
mod cli;
mod connections;
mod consume;
mod consumers;
mod dead_letters;
mod durability;
mod health;
mod helpers;
mod logs;
mod prometheus;
mod publish;
mod push;
mod receiver;
mod seeds;
mod settle;
mod topics;
