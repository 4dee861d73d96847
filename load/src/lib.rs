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
//! The map, one folder per layer, each using only the layers listed before it:
//! - [`plan`]: what to send and where, described plainly (`api`, `target`, `ops`, `load`: the
//!   [`Load`] of one run, `scenario`: the demo's loads). Sends nothing.
//! - [`engine`]: the hot loop and what it records (`pool`, `connection`, `requests`, `stats`,
//!   `seen`, `history`, `progress`), `raw`: burst's sockets, and `probe`: the reads around a run.
//! - [`check`]: the judgments, made from what was recorded (`verdict`; `bank`: Jepsen's bank
//!   checker, folded over the events).
//! - [`output`]: one output layer: [`Render`], tables as data, the `Summary` every result of a
//!   run holds, the sweep's charts, the timeline page.
//! - [`commands`]: one file per subcommand (`run`, `bank`, `burst`, `demo`, `retries`, `sweep`,
//!   `sweep_bank` for `sweep --scenario bank`, `timeline` for `report`), each taking a plain description; `servers`: the server in-process for demo,
//!   retries and sweep.
//! - [`cli`]: the flags and `--config`, turned into those descriptions; `main.rs` parses,
//!   executes, prints through [`Render`] and exits with the result's status.

pub mod check;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod output;
pub mod plan;

pub use check::bank::{Anomaly, BankCheck, FinalRead};
pub use check::verdict::Conclusion;
pub use cli::config_file::expand as expand_config;
pub use cli::opts::{BankOpts, Cli, Command, DemoScenario, Opts, SweepOpts, SweepScenario};
pub use commands::bank::{bank, bank_until};
pub use commands::bank_chart::{is_bank_history, write_bank_chart, BankChart};
pub use commands::bank_rounds::bank_rounds;
pub use commands::burst::{burst, Burst};
pub use commands::demo::{demo, Demo};
pub use commands::demo_bank::{bank_demo, bank_modes};
pub use commands::retries::retries_demo;
pub use commands::run::{run, run_until};
pub use commands::sweep::{sweep, write_files as write_sweep_files, DEFAULT_POINT_DURATION};
pub use commands::sweep_bank::{sweep_bank, write_bank_files as write_bank_sweep_files};
pub use commands::timeline::write_timeline;
pub use engine::bank::{Answer, Event, Observer};
pub use output::bank::{BankConclusion, BankReport};
pub use output::bank_rounds::RoundsReport;
pub use output::demo::Row;
pub use output::demo_bank::{BankDemo, SkewRow, TransfersRow};
pub use output::retries::RetryRow;
pub use output::sweep::{Point, Swept, CSV_HEADER};
pub use output::sweep_bank::{BankPoint, BANK_CSV_HEADER};
pub use output::{
    Render, Wrote, EXIT_DEADLOCKS, EXIT_INCONCLUSIVE, EXIT_INCONSISTENT_ANSWERS, EXIT_INTERRUPTED,
    EXIT_LOST, EXIT_PROTOCOL_ERROR, EXIT_SERVER_LOST, EXIT_USAGE,
};
pub use plan::api::Api;
pub use plan::bank::{BankLoad, BankOp, BankPlan, BankScenario};
pub use plan::bank_api::{BankApi, BankApiSpec};
pub use plan::bank_rounds::{Attack, RoundsLoad};
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
