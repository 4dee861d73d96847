//! Integration tests: the real server on 127.0.0.1:0, spoken to over HTTP with reqwest.
//!
//! One test binary for all modules, so the crate is linked once.

mod bad_input;
mod helpers;
mod postgres;
mod races;
mod shutdown;
mod stats;
mod strategies;
