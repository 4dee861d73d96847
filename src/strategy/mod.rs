//! How the read -> work -> write section is guarded, one file per strategy.
//!
//! | mode          | section                                   | loses updates? | overdraws? |
//! |---------------|-------------------------------------------|----------------|------------|
//! | `unguarded`   | read, work, blind write                   | yes            | yes        |
//! | `mutex`       | the same, one request at a time           | no             | no         |
//! | `semaphore:N` | the same, N requests at a time            | when N > 1     | when N > 1 |
//! | `optimistic`  | read, work, compare-and-swap, else redo   | no             | no         |
//! | `atomic`      | work, then one indivisible update         | no             | no         |
//!
//! A new strategy is a file here, a variant of [`Mode`] and of `Strategy`, and an arm in
//! `Strategy::apply`.

mod atomic;
mod mutex;
mod optimistic;
mod semaphore;
mod unguarded;

use std::fmt;
use std::str::FromStr;

use crate::account::{AccountError, Shared};
use crate::money::Op;

/// The `--mode` setting: which strategy guards the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Read, work, write, with no guard: the race.
    Unguarded,
    /// The same section behind a mutex held across the work.
    Mutex,
    /// The same section admitting up to N requests at once.
    Semaphore(u32),
    /// No lock: compare-and-swap the result, and redo the work on conflict.
    Optimistic,
    /// Work first, then apply the change in one indivisible step.
    Atomic,
}

impl Mode {
    /// One of each strategy, as the demo shows them.
    pub fn showcase() -> [Mode; 5] {
        [
            Mode::Unguarded,
            Mode::Mutex,
            Mode::Semaphore(4),
            Mode::Optimistic,
            Mode::Atomic,
        ]
    }

    /// Whether this mode keeps every update and never pays out more than the balance.
    pub fn is_safe(self) -> bool {
        match self {
            Mode::Unguarded => false,
            Mode::Semaphore(permits) => permits == 1,
            Mode::Mutex | Mode::Optimistic | Mode::Atomic => true,
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "unguarded" => Ok(Mode::Unguarded),
            "mutex" => Ok(Mode::Mutex),
            "optimistic" => Ok(Mode::Optimistic),
            "atomic" => Ok(Mode::Atomic),
            other => match other.strip_prefix("semaphore:").map(str::parse::<u32>) {
                Some(Ok(permits)) if (1..=100_000).contains(&permits) => {
                    Ok(Mode::Semaphore(permits))
                }
                Some(_) => Err(format!(
                    "`{other}`: semaphore takes a permit count from 1 to 100000 (e.g. `semaphore:4`)"
                )),
                None => Err(format!(
                    "`{other}` is not a mode: use unguarded, mutex, semaphore:N, optimistic or atomic"
                )),
            },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Unguarded => f.write_str("unguarded"),
            Mode::Mutex => f.write_str("mutex"),
            Mode::Semaphore(permits) => write!(f, "semaphore:{permits}"),
            Mode::Optimistic => f.write_str("optimistic"),
            Mode::Atomic => f.write_str("atomic"),
        }
    }
}

/// A mode made ready to run: the guard each strategy needs.
#[derive(Debug)]
pub(crate) enum Strategy {
    Unguarded,
    Mutex(tokio::sync::Mutex<()>),
    Semaphore(tokio::sync::Semaphore),
    Optimistic { max_retries: u32 },
    Atomic,
}

impl Strategy {
    /// Builds the guard for `mode`; `max_retries` bounds optimistic redos.
    pub(crate) fn new(mode: Mode, max_retries: u32) -> Self {
        match mode {
            Mode::Unguarded => Strategy::Unguarded,
            Mode::Mutex => Strategy::Mutex(tokio::sync::Mutex::new(())),
            Mode::Semaphore(permits) => {
                Strategy::Semaphore(tokio::sync::Semaphore::new(permits as usize))
            }
            Mode::Optimistic => Strategy::Optimistic { max_retries },
            Mode::Atomic => Strategy::Atomic,
        }
    }

    /// Applies `op` to the account and returns the balance it wrote.
    pub(crate) async fn apply(&self, shared: &Shared, op: Op) -> Result<i64, AccountError> {
        match self {
            Strategy::Unguarded => unguarded::apply(shared, op).await,
            Strategy::Mutex(lock) => mutex::apply(lock, shared, op).await,
            Strategy::Semaphore(permits) => semaphore::apply(permits, shared, op).await,
            Strategy::Optimistic { max_retries } => {
                optimistic::apply(shared, op, *max_retries).await
            }
            Strategy::Atomic => atomic::apply(shared, op).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for text in [
            "unguarded",
            "mutex",
            "semaphore:1",
            "semaphore:8",
            "optimistic",
            "atomic",
        ] {
            let mode: Mode = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(mode.to_string(), text);
        }
        for bad in [
            "",
            "locked",
            "semaphore",
            "semaphore:0",
            "semaphore:-1",
            "Mutex",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?} should be refused");
        }
    }
}
