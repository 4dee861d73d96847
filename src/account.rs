//! The account: one balance, its ledger, and the strategy that guards its updates.
//!
//! The balance is an atomic so that the unguarded race is a race condition, not undefined behaviour:
//! a `load` to read, a `swap` to write. The swap returns the balance it replaced, which is how every
//! write knows whether it erased someone else's update. Each write and its ledger entry happen with no
//! await between them, so a client that disconnects can never leave the two out of step.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use crate::config::Config;
use crate::ledger::{Ledger, Stats};
use crate::money::{Op, Refusal};
use crate::strategy::{Mode, Strategy};
use crate::work::{Work, WorkSpec};

/// Why an operation was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// The funds check or the overflow check said no.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Optimistic mode met a conflicting write on every attempt.
    #[error(
        "gave up after redoing the work {retries} times: every attempt met a conflicting write"
    )]
    Contention { retries: u32 },
    /// The server is stopping and cut the work short; nothing was written.
    #[error("the server is shutting down")]
    Stopped,
}

/// A bank account with one balance, guarded (or not) by its mode.
#[derive(Debug)]
pub struct Account {
    mode: Mode,
    opening_balance: i64,
    strategy: Strategy,
    shared: Shared,
    stopping: watch::Sender<bool>,
}

impl Account {
    /// Opens the account that `config` describes.
    pub fn new(config: &Config) -> Self {
        Self {
            mode: config.mode,
            opening_balance: config.initial_balance,
            strategy: Strategy::new(config.mode, config.max_retries),
            shared: Shared {
                balance: AtomicI64::new(config.initial_balance),
                ledger: Mutex::new(Ledger::new(config.initial_balance)),
                work: Work::new(config.work),
            },
            stopping: watch::Sender::new(false),
        }
    }

    /// Applies a deposit or withdrawal and returns the balance this request wrote.
    pub async fn apply(&self, op: Op) -> Result<i64, AccountError> {
        let outcome = if self.shared.work.spec() == WorkSpec::None {
            // No await point in the work, so nothing to cut short: skip the watch on the hot path.
            self.strategy.apply(&self.shared, op).await
        } else {
            let mut stopping = self.stopping.subscribe();
            tokio::select! {
                outcome = self.strategy.apply(&self.shared, op) => outcome,
                _ = stopping.wait_for(|stopping| *stopping) => Err(AccountError::Stopped),
            }
        };
        if let Err(AccountError::Refused(Refusal::InsufficientFunds { .. })) = outcome {
            self.shared.ledger().record_refusal();
        }
        outcome
    }

    /// Cuts short every request still waiting or working: each answers 503 and writes nothing.
    /// The strategies are cancel-safe, so dropping them mid-work leaves no half-write.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// The balance now.
    pub fn balance(&self) -> i64 {
        self.shared.read()
    }

    /// The counters and the balance; consistent with each other whenever no request is in flight.
    pub fn stats(&self) -> Stats {
        let ledger = self.shared.ledger();
        ledger.stats(
            self.shared.read(),
            self.mode.to_string(),
            self.shared.work.spec().to_string(),
        )
    }

    /// The balance the account was opened with (`--initial-balance`).
    pub fn opening_balance(&self) -> i64 {
        self.opening_balance
    }

    /// Sets the balance and zeroes every counter, so runs can repeat without a restart.
    pub fn reset(&self, balance: i64) {
        let mut ledger = self.shared.ledger();
        self.shared.balance.store(balance, Ordering::SeqCst);
        *ledger = Ledger::new(balance);
    }
}

/// What every strategy works on: the balance, the ledger and the work.
#[derive(Debug)]
pub(crate) struct Shared {
    balance: AtomicI64,
    ledger: Mutex<Ledger>,
    work: Work,
}

impl Shared {
    /// Reads the balance.
    pub(crate) fn read(&self) -> i64 {
        self.balance.load(Ordering::SeqCst)
    }

    /// The work between read and write.
    pub(crate) fn work(&self) -> &Work {
        &self.work
    }

    /// Writes `new_balance` blindly, computed from `read`, and records whether it erased another
    /// write (the swap hands back what was there).
    pub(crate) fn overwrite(&self, op: Op, read: i64, new_balance: i64) {
        let overwritten = self.balance.swap(new_balance, Ordering::SeqCst);
        self.ledger().record_write(op, read, overwritten);
    }

    /// Writes `new_balance` only if the balance is still `read`; records the write if it happened.
    pub(crate) fn compare_and_write(&self, op: Op, read: i64, new_balance: i64) -> bool {
        let written = self
            .balance
            .compare_exchange(read, new_balance, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if written {
            self.ledger().record_write(op, read, read);
        }
        written
    }

    /// Applies `op` to the current balance in one indivisible step and records it.
    pub(crate) fn update_in_place(&self, op: Op) -> Result<i64, Refusal> {
        // The closure's last answer is the outcome: the balance written, or the refusal.
        let mut outcome = None;
        let updated = self
            .balance
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |balance| {
                let attempt = op.apply_to(balance);
                outcome = Some(attempt);
                attempt.ok()
            });
        if let Ok(read) = updated {
            self.ledger().record_write(op, read, read);
        }
        outcome.expect("fetch_update calls the closure at least once")
    }

    /// Records optimistic conflicts.
    pub(crate) fn record_retries(&self, retries: u32, gave_up: bool) {
        self.ledger().record_retries(u64::from(retries), gave_up);
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Nothing panics while holding the ledger, but a poisoned lock must not take the server down.
        self.ledger
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
