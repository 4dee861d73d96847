//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP with reqwest.
//!
//! One test binary for all modules, so the crate is linked once.

mod abuse;
mod bad_input;
mod browser;
mod crash;
mod helpers;
mod idempotency;
mod live;
mod metrics;
mod openapi;
mod postgres;
mod process;
mod races;
mod raw;
mod redis;
mod shutdown;
mod stats;
mod strategies;
