//! The balance cell: one balance and its ledger, in this process.
//!
//! The balance is an atomic so that the unguarded race is a race condition, not undefined behaviour:
//! a `load` to read, a `swap` to write. The swap returns the balance it replaced, which is how every
//! write knows whether it erased someone else's update. Each write and its ledger entry happen with no
//! await between them, so a client that disconnects can never leave the two out of step.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::ledger::Ledger;
use crate::money::{Op, Refusal};

/// The balance and its ledger.
#[derive(Debug)]
pub(super) struct Cell {
    balance: AtomicI64,
    ledger: Mutex<Ledger>,
}

impl Cell {
    pub(super) fn new(balance: i64) -> Self {
        Self {
            balance: AtomicI64::new(balance),
            ledger: Mutex::new(Ledger::new(balance)),
        }
    }

    /// Reads the balance.
    pub(super) fn read(&self) -> i64 {
        self.balance.load(Ordering::SeqCst)
    }

    /// Writes `new_balance` blindly, computed from `read`, and records whether it erased another
    /// write (the swap hands back what was there).
    pub(super) fn overwrite(&self, op: Op, read: i64, new_balance: i64) {
        let overwritten = self.balance.swap(new_balance, Ordering::SeqCst);
        self.ledger().record_write(op, read, overwritten);
    }

    /// Writes `new_balance` only if the balance is still `read`; records the write if it happened.
    pub(super) fn compare_and_write(&self, op: Op, read: i64, new_balance: i64) -> bool {
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
    pub(super) fn update_in_place(&self, op: Op) -> Result<i64, Refusal> {
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

    /// Sets the balance and starts a new ledger, as one step for anyone reading the stats.
    pub(super) fn reset(&self, balance: i64) {
        let mut ledger = self.ledger();
        self.balance.store(balance, Ordering::SeqCst);
        *ledger = Ledger::new(balance);
    }

    pub(super) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Nothing panics while holding the ledger, but a poisoned lock must not take the server down.
        self.ledger
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
