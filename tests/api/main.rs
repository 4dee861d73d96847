//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP with reqwest.
//!
//! One test binary for all modules, so the crate is linked once.

// A test reads top to bottom as arrange / act / assert, with its cases in a table; cutting one in
// phases to fit 80 lines would scatter what it checks.
#![allow(
    clippy::too_many_lines,
    reason = "tests read top to bottom; their tables of cases make some long"
)]

mod abuse;
mod bad_input;
mod bank;
mod browser;
mod crash;
mod docs;
mod fairness;
mod health;
mod helpers;
mod hosts;
mod idempotency;
mod live;
mod metrics;
mod openapi;
mod postgres;
mod process;
mod races;
mod raw;
mod redis;
mod redis_bank;
mod redis_durability;
mod reset;
mod shutdown;
mod stats;
mod strategies;
