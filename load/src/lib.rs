//! racebank-load: a load generator that proves, from the responses alone, whether a bank account
//! lost updates.
//!
//! It reads the balance, sends a deterministic sequence of deposits and withdrawals as fast as the
//! concurrency allows, reads the balance again, and judges: the final balance must lie in the
//! range the acknowledged operations allow, no withdrawal may pay out money the account never
//! held, and (deposits or withdrawals only, one amount) no two answers may report the same
//! balance. The server's `/stats` is compared when it exists, never relied on.
//!
//! The map:
//! - [`opts`]: the command line (`run`, the default, and `demo`), checked before anything is sent.
//! - [`ops`]: the operation sequence, operation `i` a pure function of `(seed, i)`.
//! - [`workers`]: the hot loop: one current-thread runtime and [`Stats`] per thread, one hyper
//!   HTTP/1.1 keep-alive connection per in-flight slot.
//! - [`stats`]: what a worker observed (latency histogram, counters, sums), merged at the end.
//! - [`seen`]: the duplicate-balance bitset, one bit per request.
//! - [`verdict`]: expected range, lost amount, overdraft, duplicates, and the `/stats` cross-check.
//! - [`probe`]: the balance and `/stats` reads around a run.
//! - [`progress`]: the progress bar, fed by a ticker rather than by requests.
//! - [`report`]: the [`Report`], as aligned text or JSON.
//! - [`run`](mod@run): one run from start to verdict.
//! - [`demo`](mod@demo): the server in-process, once per mode, the same load against each, side by side.

pub mod demo;
pub mod ops;
pub mod opts;
pub mod probe;
pub mod progress;
pub mod report;
pub mod run;
pub mod seen;
pub mod stats;
pub mod verdict;
pub mod workers;

pub use demo::{demo, Row};
pub use opts::{Cli, Command, DemoOpts, Opts};
pub use report::Report;
pub use run::run;
pub use stats::Stats;
pub use verdict::Verdict;
