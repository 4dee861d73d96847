//! [`BankLoad`]: a plain description of one `bank` run (Jepsen's bank test over HTTP), and its
//! operation sequence: operation `i` is a pure function of `(seed, i)`, as `run`'s is.
//!
//! Accounts are positions `0..accounts`, named on the wire by their decimal id (`"0"`, `"1"`, ...,
//! Jepsen's naming and `racebank --accounts N`'s).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use crate::plan::api::Header;
use crate::plan::bank_api::BankApi;
use crate::plan::load::{Limit, DEFAULT_SEED};
use crate::plan::ops::splitmix64;

/// What a `bank` run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BankScenario {
    /// Jepsen's mix: transfers of 1..=max between random distinct accounts, and reads of every
    /// balance.
    #[default]
    Transfers,
    /// Transfers of 1 between accounts 0 and 1 only, in alternating directions: two in opposite
    /// directions that lock their accounts in the order named wait for each other.
    Deadlock,
    /// Rounds of two concurrent withdrawals from a household pair, each covered alone, both
    /// together not (`plan::bank_rounds`).
    WriteSkew,
    /// Jepsen's ledger attack: rounds of 1..16 concurrent withdrawals of 9 from an account
    /// holding 10 (`plan::bank_rounds`).
    DoubleSpend,
}

impl BankScenario {
    /// Whether the scenario runs in rounds of withdrawals (`bank_rounds`), not the transfer loop.
    pub fn is_rounds(self) -> bool {
        matches!(self, BankScenario::WriteSkew | BankScenario::DoubleSpend)
    }
}

/// One request of a `bank` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BankOp {
    /// `GET /accounts`: every balance.
    Read,
    /// `POST /transfers`.
    Transfer {
        /// The account debited.
        from: usize,
        /// The account credited (another one).
        to: usize,
        /// At least 1.
        amount: i64,
    },
}

/// How operations are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BankPlan {
    /// Seed of the sequence.
    pub seed: u64,
    /// How many accounts transfers move money between (2 or more).
    pub accounts: usize,
    /// The largest transfer.
    pub max_transfer: i64,
    /// Share of reads, 0 to 1.
    pub reads: f64,
    /// What is sent.
    pub scenario: BankScenario,
}

impl BankPlan {
    /// Operation number `index`.
    pub fn op(&self, index: u64) -> BankOp {
        let first = splitmix64(self.seed ^ splitmix64(index));
        let second = splitmix64(first);
        let third = splitmix64(second);
        // The top 53 bits as a share in 0..1.
        #[allow(
            clippy::cast_precision_loss,
            reason = "53 bits fit an f64's mantissa exactly"
        )]
        let share = (first >> 11) as f64 / (1u64 << 53) as f64;
        if share < self.reads {
            return BankOp::Read;
        }
        match self.scenario {
            // The rounds scenarios never reach the transfer loop; they draw as `transfers`.
            BankScenario::Transfers | BankScenario::WriteSkew | BankScenario::DoubleSpend => {
                let accounts = self.accounts.max(2) as u64;
                let from = pick(second, accounts);
                // A distinct `to`: one of the other accounts.
                let to = (from + 1 + pick(third, accounts - 1)) % accounts;
                let amount = 1 + pick(splitmix64(third), self.max_transfer.max(1).unsigned_abs());
                BankOp::Transfer {
                    from: position(from),
                    to: position(to),
                    amount: i64::try_from(amount).unwrap_or(i64::MAX),
                }
            }
            BankScenario::Deadlock => {
                let (from, to) = if index.is_multiple_of(2) {
                    (0, 1)
                } else {
                    (1, 0)
                };
                BankOp::Transfer {
                    from,
                    to,
                    amount: 1,
                }
            }
        }
    }
}

/// `hash` mapped onto `0..width` (multiply-shift, no division).
fn pick(hash: u64, width: u64) -> u64 {
    u64::try_from((u128::from(hash) * u128::from(width)) >> 64).unwrap_or(0)
}

fn position(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// What to send, where, and how to judge it.
#[derive(Debug, Clone)]
pub struct BankLoad {
    /// The replicas of the bank server: transfers and reads go round robin (request `i` to
    /// replica `i % n`); the bank is opened, read at the end and its `/stats` read on the first,
    /// so the replicas must share one bank (a store's).
    pub targets: Vec<Url>,
    /// Headers sent with every request (`-H`).
    pub headers: Vec<Header>,
    /// The bank's routes, bodies and pointers (racebank's by default).
    pub api: BankApi,
    /// The operation sequence (accounts, max transfer, reads, scenario, seed).
    pub plan: BankPlan,
    /// The money in the bank: opened in account 0 (split between 0 and 1 for `deadlock`).
    pub total: i64,
    /// Whether a balance below zero is allowed (a bank of households); otherwise every negative
    /// balance read is an anomaly.
    pub allow_negative: bool,
    /// Open the bank at the server's own opening balances (`POST /bank/reset` without a body, as
    /// `racebank --accounts N --initial-balance B` set them) instead of the whole total in
    /// account 0; the total is then what the bank holds after the reset.
    pub server_openings: bool,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// How many, or how long.
    pub limit: Limit,
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
}

/// Jepsen's bank defaults: 8 accounts, a total of 100, transfers of at most 5, half reads.
pub(crate) const DEFAULT_ACCOUNTS: usize = 8;
/// The default total.
pub(crate) const DEFAULT_TOTAL: i64 = 100;
/// The default largest transfer.
pub(crate) const DEFAULT_MAX_TRANSFER: i64 = 5;
/// The default share of reads.
pub(crate) const DEFAULT_READS: f64 = 0.5;

impl BankLoad {
    /// Jepsen's bank at `url`: 8 accounts, 100 in account 0, transfers of 1..=5, half reads,
    /// 2000 requests 64 at a time.
    pub fn new(url: Url) -> Self {
        BankLoad {
            targets: vec![url],
            headers: Vec::new(),
            api: BankApi::default(),
            plan: BankPlan {
                seed: DEFAULT_SEED,
                accounts: DEFAULT_ACCOUNTS,
                max_transfer: DEFAULT_MAX_TRANSFER,
                reads: DEFAULT_READS,
                scenario: BankScenario::Transfers,
            },
            total: DEFAULT_TOTAL,
            allow_negative: false,
            server_openings: false,
            concurrency: 64,
            limit: Limit::Count(2000),
            timeout: Duration::from_secs(10),
            threads: None,
            progress: false,
            history: None,
            max_error_rate: None,
        }
    }

    /// The opening balances, by position: the whole total in account 0 (`deadlock`: half in 0,
    /// the rest in 1, so that both directions can pay).
    pub fn openings(&self) -> Vec<i64> {
        let mut openings = vec![0; self.plan.accounts];
        match self.plan.scenario {
            BankScenario::Transfers | BankScenario::WriteSkew | BankScenario::DoubleSpend => {
                openings[0] = self.total;
            }
            BankScenario::Deadlock => {
                openings[0] = self.total / 2;
                openings[1] = self.total - self.total / 2;
            }
        }
        openings
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_between_distinct_accounts_in_range_and_reads_are_about_half() {
        let plan = BankLoad::new("http://127.0.0.1:1".parse().unwrap()).plan;
        let mut reads = 0;
        let mut seen_from = [false; DEFAULT_ACCOUNTS];
        for index in 0..10_000 {
            match plan.op(index) {
                BankOp::Read => reads += 1,
                BankOp::Transfer { from, to, amount } => {
                    assert_ne!(from, to);
                    assert!(to < DEFAULT_ACCOUNTS && from < DEFAULT_ACCOUNTS);
                    assert!((1..=DEFAULT_MAX_TRANSFER).contains(&amount), "{amount}");
                    seen_from[from] = true;
                }
            }
        }
        assert!((4_500..=5_500).contains(&reads), "{reads}");
        assert!(seen_from.iter().all(|seen| *seen));
        assert_eq!(plan.op(17), plan.op(17), "a pure function of the index");
    }

    #[test]
    fn the_deadlock_scenario_alternates_between_accounts_0_and_1() {
        let mut load = BankLoad::new("http://127.0.0.1:1".parse().unwrap());
        load.plan.scenario = BankScenario::Deadlock;
        load.plan.reads = 0.0;
        let transfer = |from, to| BankOp::Transfer {
            from,
            to,
            amount: 1,
        };
        assert_eq!(load.plan.op(0), transfer(0, 1));
        assert_eq!(load.plan.op(1), transfer(1, 0));
        assert_eq!(load.openings()[..3], [50, 50, 0]);
    }
}
