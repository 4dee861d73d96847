//! The balance cell: one balance and its ledger, in this process.
//!
//! The balance is an atomic so that the unguarded race is a race condition, not undefined behaviour:
//! a `load` to read, a `swap` to write. The swap returns the balance it replaced, which is how every
//! write knows whether it erased someone else's update. Each write and its ledger entry happen with no
//! await between them, so a client that disconnects can never leave the two out of step.
//!
//! A write with an idempotency key holds the key table's lock around the write: the key is checked
//! free, the balance written, the ledger entry and the key's answer recorded, in one step. Writes
//! without a key never touch that lock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::keys::Keys;
use crate::error::AccountError;
use crate::idempotency::Claim;
use crate::ledger::Ledger;
use crate::money::Op;

/// The balance, its ledger and the idempotency keys.
#[derive(Debug)]
pub(super) struct Cell {
    balance: AtomicI64,
    ledger: Mutex<Ledger>,
    keys: Mutex<Keys>,
}

impl Cell {
    pub(super) fn new(balance: i64) -> Self {
        Self {
            balance: AtomicI64::new(balance),
            ledger: Mutex::new(Ledger::new(balance)),
            keys: Mutex::new(Keys::default()),
        }
    }

    /// Reads the balance.
    pub(super) fn read(&self) -> i64 {
        self.balance.load(Ordering::SeqCst)
    }

    /// Writes `new_balance` blindly, computed from `read`, and records whether it erased another
    /// write (the swap hands back what was there).
    pub(super) fn overwrite(
        &self,
        op: Op,
        read: i64,
        new_balance: i64,
        claim: Option<&Claim<'_>>,
    ) -> Result<(), AccountError> {
        self.keyed(claim, || {
            let overwritten = self.balance.swap(new_balance, Ordering::SeqCst);
            self.ledger().record_write(op, read, overwritten);
            ((), Some(new_balance))
        })
    }

    /// Writes `new_balance` only if the balance is still `read`; records the write if it happened.
    pub(super) fn compare_and_write(
        &self,
        op: Op,
        read: i64,
        new_balance: i64,
        claim: Option<&Claim<'_>>,
    ) -> Result<bool, AccountError> {
        self.keyed(claim, || {
            let written = self
                .balance
                .compare_exchange(read, new_balance, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if written {
                self.ledger().record_write(op, read, read);
            }
            (written, written.then_some(new_balance))
        })
    }

    /// Applies `op` to the current balance in one indivisible step and records it.
    pub(super) fn update_in_place(
        &self,
        op: Op,
        claim: Option<&Claim<'_>>,
    ) -> Result<i64, AccountError> {
        let outcome = self.keyed(claim, || {
            // The closure's last answer is the outcome: the balance written, or the refusal.
            let mut outcome = None;
            let updated =
                self.balance
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |balance| {
                        let attempt = op.apply_to(balance);
                        outcome = Some(attempt);
                        attempt.ok()
                    });
            if let Ok(read) = updated {
                self.ledger().record_write(op, read, read);
            }
            let outcome = outcome.expect("fetch_update calls the closure at least once");
            (outcome, outcome.ok())
        })?;
        Ok(outcome?)
    }

    /// Runs `write`, which answers its result and the balance it wrote (if it wrote). With a key,
    /// under the key table's lock: the key must still be free, and the balance written becomes the
    /// key's answer in the same step. A key answered meanwhile writes nothing: `KeyInUse`.
    fn keyed<T>(
        &self,
        claim: Option<&Claim<'_>>,
        write: impl FnOnce() -> (T, Option<i64>),
    ) -> Result<T, AccountError> {
        let Some(claim) = claim else {
            return Ok(write().0);
        };
        let mut keys = self.keys();
        if keys.get(claim.key).is_some() {
            return Err(AccountError::KeyInUse);
        }
        let (result, written) = write();
        if let Some(balance) = written {
            keys.insert(claim, claim.answer(Ok(balance)));
        }
        Ok(result)
    }

    /// The idempotency keys.
    pub(super) fn keys(&self) -> MutexGuard<'_, Keys> {
        // As for the ledger: nothing panics while holding it, and poisoning must not stop the server.
        self.keys
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Sets the balance and starts a new ledger, as one step for anyone reading the stats.
    pub(super) fn reset(&self, balance: i64) {
        // The keys first, as every keyed write takes them: answers of the old run must not replay
        // into the new one.
        let mut keys = self.keys();
        keys.clear();
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
