//! What an account is made of, knowing nothing of stores or HTTP: the stores (`crate::store`) are
//! built from these parts, and [`crate::account::Account`] puts a store behind them.
//!
//! - [`money`]: amounts as integer minor units with checked arithmetic.
//! - [`error`]: why an operation was not applied, why an account could not be opened.
//! - [`mode`]: the `--mode` names, and the one table of which store runs which.
//! - [`work`]: what happens between the read and the write, and where a stopping server cuts
//!   requests short.
//! - [`ledger`]: the counters behind `/stats`.
//! - [`idempotency`]: `Idempotency-Key`: the key, the answer a store keeps for it, and the rules.
//! - [`id`]: the name of an account.
//! - [`bank`]: many accounts: the moves between them, the household rule, the bank's ledger.

pub(crate) mod bank;
pub(crate) mod error;
pub(crate) mod id;
pub(crate) mod idempotency;
pub(crate) mod ledger;
pub(crate) mod mode;
pub(crate) mod money;
pub(crate) mod work;
