//! [`Load`]: a plain description of one run, what `run`, `demo`, `burst` and the tests all build.
//!
//! The command line is one way to fill it in ([`crate::cli::opts`]); nothing here knows about clap.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::plan::api::Api;
use crate::plan::ops::AmountSpec;
use crate::plan::target::Target;

/// The seed used when none is given: fixed, so two runs send the same operations.
pub(crate) const DEFAULT_SEED: u64 = 1;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this many requests.
    Count(u64),
    /// After this long.
    Duration(Duration),
}

/// What to send, where, and how to judge it.
#[derive(Debug, Clone)]
pub struct Load {
    /// The replicas of the server: requests go round robin; the balance and `/stats` are read
    /// from the first.
    pub targets: Vec<Url>,
    /// The shape of the API (racebank's by default).
    pub api: Api,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// How many, or how long.
    pub limit: Limit,
    /// Share of withdrawals, 0 to 1.
    pub withdraw_ratio: f64,
    /// The amount of each operation.
    pub amount: AmountSpec,
    /// Seed of the operation sequence.
    pub seed: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Worker threads; the core count when `None`.
    pub threads: Option<usize>,
    /// Whether to draw a progress bar (only ever on a terminal).
    pub progress: bool,
    /// Where to write one JSON line per request.
    pub history: Option<PathBuf>,
    /// The share of requests that may fail before the run fails, if any.
    pub max_error_rate: Option<f64>,
    /// How often an operation is sent again after a transport failure, a timeout or an answer
    /// that says its outcome is unknown (docs/retries.md).
    pub retries: u32,
    /// Whether a retried run sends an `Idempotency-Key` with each operation (`rb-<run>-<index>`,
    /// the same on every attempt), so that a retry cannot apply twice. Only sent when `retries`
    /// is above 0.
    pub idempotency_keys: bool,
}

impl Load {
    /// Every `--url`, checked (http only) and resolved once, before anything is sent; at least
    /// one. The balance and `/stats` are read from the first.
    pub(crate) fn resolve_targets(&self) -> anyhow::Result<Vec<Target>> {
        anyhow::ensure!(!self.targets.is_empty(), "no --url to send the load to");
        self.targets.iter().map(Target::new).collect()
    }

    /// Whether each operation carries an idempotency key.
    pub fn sends_keys(&self) -> bool {
        self.retries > 0 && self.idempotency_keys
    }

    /// 2000 deposits of 5, 64 at a time, against racebank's API at `url`.
    pub fn new(url: Url) -> Self {
        Load {
            targets: vec![url],
            api: Api::default(),
            concurrency: 64,
            limit: Limit::Count(2000),
            withdraw_ratio: 0.0,
            amount: AmountSpec { min: 5, max: 5 },
            seed: DEFAULT_SEED,
            timeout: Duration::from_secs(10),
            threads: None,
            progress: false,
            history: None,
            max_error_rate: None,
            retries: 0,
            idempotency_keys: true,
        }
    }

    /// Worker threads to start: the given number or the core count, never more than the
    /// concurrency.
    pub fn thread_count(&self) -> usize {
        let wanted = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        wanted.clamp(
            1,
            usize::try_from(self.concurrency.max(1)).unwrap_or(usize::MAX),
        )
    }
}
