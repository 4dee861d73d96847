//! The hot loop and what it records: threads and slots, connections, requests built once, the
//! stats a worker keeps, the duplicate-balance bitset, the history file, the reads around a run.

pub(crate) mod bank;
pub(crate) mod bank_probe;
pub(crate) mod bank_rounds;
pub(crate) mod connection;
pub(crate) mod history;
pub(crate) mod pool;
pub(crate) mod probe;
pub(crate) mod progress;
pub(crate) mod raw;
pub(crate) mod requests;
pub(crate) mod seen;
pub(crate) mod stats;
