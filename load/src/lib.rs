//! racebank-load: a load generator that proves, from the responses alone, whether a bank account
//! lost updates.
//!
//! It reads the balance, sends a deterministic sequence of deposits and withdrawals as fast as the
//! concurrency allows, reads the balance again, and judges: the final balance must lie in the
//! range the acknowledged operations allow, no withdrawal may pay out money the account never
//! held, and (deposits or withdrawals only, one amount) no two answers may report the same
//! balance. The server's `/stats` is compared when it exists, never relied on. Any API shaped like
//! an account can be loaded (routes, body, headers, where the balance is), and `burst` releases
//! requests at the same instant to find races that a steady stream misses.
//!
//! The map:
//! - [`opts`] and [`config_file`]: the command line and `--config`, turned into plain
//!   descriptions of the work: a [`Load`] ([`load`]) or a [`Burst`].
//! - [`api`]: the shape of the API under test (racebank's by default); [`target`]: each `--url`,
//!   resolved once.
//! - [`ops`]: the operation sequence, operation `i` a pure function of `(seed, i)`.
//! - The hot loop: [`pool`] (threads, one current-thread runtime each, one slot per in-flight
//!   request), [`requests`] (the parts of every request, built once per thread) and
//!   [`connection`] (one hyper HTTP/1.1 keep-alive connection per slot and replica).
//! - [`stats`]: what a worker observed, and the decision it counts: was a request applied?
//! - [`seen`]: the duplicate-balance bitset, one bit per request.
//! - [`verdict`]: expected range, lost amount, overdraft, duplicates, the `/stats` cross-check,
//!   and the conclusion: consistent, lost, or inconclusive when another client was active.
//! - [`probe`]: the balance and `/stats` reads around a run.
//! - [`history`]: `--history`, one JSON line per request, streamed.
//! - [`progress`]: the progress bar, fed by a ticker rather than by requests.
//! - [`report`]: the [`Report`], as aligned text or JSON, and the exit status.
//! - [`run`](mod@run): one run from start to verdict.
//! - [`burst`](mod@burst): synchronised rounds, each judged.
//! - [`demo`](mod@demo): the server in-process, once per mode, the same load against each.
//! - [`retries`]: `demo --scenario retries`, lost acknowledgements with and without keys.
//! - [`sweep`](mod@sweep): one run per mode, work window and concurrency, as CSV, JSON and
//!   charts ([`chart`]: SVG and PNG).
//! - [`timeline`](mod@timeline): `report`, a `--history` file drawn as a timeline on one HTML page.

pub mod check;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod output;
pub mod plan;

pub use check::verdict::Conclusion;
pub use cli::config_file::expand as expand_config;
pub use cli::opts::{Cli, Command, DemoScenario, Opts, SweepOpts};
pub use commands::burst::{burst, Burst};
pub use commands::demo::{demo, Demo};
pub use commands::retries::retries_demo;
pub use commands::run::{run, run_until};
pub use commands::sweep::{sweep, write_files as write_sweep_files, DEFAULT_POINT_REQUESTS};
pub use commands::timeline::write_timeline;
pub use output::demo::Row;
pub use output::retries::RetryRow;
pub use output::sweep::{Point, Swept, CSV_HEADER};
pub use output::{
    Render, Wrote, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED, EXIT_LOST, EXIT_SERVER_LOST, EXIT_USAGE,
};
pub use plan::api::Api;
pub use plan::load::{Limit, Load};
pub use plan::ops::AmountSpec;

/// The pieces of the hot loop, for `benches/hot_path.rs` only: not a stable API.
#[doc(hidden)]
pub mod bench {
    pub use crate::engine::connection::Exchange;
    pub use crate::engine::requests::Requests;
    pub use crate::engine::seen::Ladder;
    pub use crate::engine::stats::{Reading, Stats};
    pub use crate::plan::ops::{Op, Plan};
    pub use crate::plan::target::Target;
}
