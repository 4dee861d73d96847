//! The demo's scenarios: plain descriptions of the loads `demo` sends to every mode, and of the
//! lost acknowledgements `demo --scenario retries` shows.

use racebank::Chaos;

/// One load the demo sends to every mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    /// Short name, used in the JSON rows.
    pub(crate) name: &'static str,
    /// The balance the server starts with.
    pub(crate) initial_balance: i64,
    /// Share of withdrawals.
    pub(crate) withdraw_ratio: f64,
    /// The fixed amount of each operation.
    pub(crate) amount: i64,
    /// Requests when `--requests` is not given.
    pub(crate) default_requests: u64,
}

/// Concurrent deposits into an empty account: an unguarded account keeps only some of them.
pub(crate) const DEPOSITS: Scenario = Scenario {
    name: "deposits",
    initial_balance: 0,
    withdraw_ratio: 0.0,
    amount: 5,
    default_requests: 500,
};

/// Concurrent withdrawals of 10 from a balance of 100: an unguarded account pays out more than 100.
pub(crate) const WITHDRAWALS: Scenario = Scenario {
    name: "withdrawals",
    initial_balance: 100,
    withdraw_ratio: 1.0,
    amount: 10,
    default_requests: 200,
};

/// The share of applied deposits whose answer the retries demo's server drops.
pub(crate) const CHAOS: Chaos = Chaos {
    drop_after_apply: 0.2,
};

/// How often the retrying rows send an operation again: with a 0.2 drop rate, 4 attempts leave
/// one operation in 625 unanswered.
pub(crate) const RETRIES: u32 = 3;

/// The deposits the retries demo sends when `--requests` is not given, and their amount.
pub(crate) const RETRY_REQUESTS: u64 = 500;
pub(crate) const RETRY_AMOUNT: i64 = 5;
