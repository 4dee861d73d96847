//! Integration tests of racebank-load against the real racebank server, in one test binary.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads as arrange, act, assert in one place, however long"
)]

mod bank;
mod bank_replicas;
mod bank_scenarios;
mod binary;
mod burst;
mod closing;
mod demo;
mod doc_runs;
mod docs;
mod helpers;
mod hostile;
mod other_api;
mod other_bank;
mod retries;
mod run;
mod scripted;
mod server_lost;
mod sweep;
mod sweep_bank;
mod timeline;
