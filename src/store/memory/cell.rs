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
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::ledger::Ledger;
use crate::domain::money::Op;

/// The balance, its ledger and the idempotency keys.
#[derive(Debug)]
pub(super) struct Cell {
    balance: AtomicI64,
    ledger: Mutex<Ledger>,
    keys: Mutex<Keys>,
}

impl Cell {
    pub(super) fn new(balance: i64) -> Self {
        Self::with_keys(balance, Keys::default())
    }

    /// A cell whose key table is `keys` (a small one, in tests).
    pub(super) fn with_keys(balance: i64, keys: Keys) -> Self {
        Self {
            balance: AtomicI64::new(balance),
            ledger: Mutex::new(Ledger::new(balance)),
            keys: Mutex::new(keys),
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
        // Before the write: a key that could not be kept must not be applied.
        keys.make_room()?;
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The ledger identity under random interleavings of the section every strategy runs.
///
/// Each request is its section cut into the steps that touch the cell: a read and a write for
/// `overwrite` (unguarded) and `compare_and_write` (optimistic, which reads again when the compare
/// fails), one step for `update_in_place` (atomic). The work between them is where other requests'
/// steps land, so a random schedule of steps is a random interleaving of the requests.
#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Cell;
    use crate::domain::error::AccountError;
    use crate::domain::money::{Amount, Op, Refusal};

    /// How a request writes: the cell method its strategy calls.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Writer {
        Overwrite,
        CompareAndWrite,
        InPlace,
    }

    #[derive(Debug, Clone, Copy)]
    struct Request {
        op: Op,
        write: Writer,
    }

    /// Where a request is in its section.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Read,
        Write { read: i64, new_balance: i64 },
        Done,
    }

    /// Runs every request on one cell starting at `initial`. At each step the next pick of
    /// `schedule`, modulo their number, chooses which unfinished request moves; once the schedule
    /// runs out, the first unfinished one moves until all are done (alone, a compare-and-write
    /// succeeds, so this ends).
    fn run(initial: i64, requests: &[Request], schedule: &[usize]) -> Cell {
        let cell = Cell::new(initial);
        let mut steps = vec![Step::Read; requests.len()];
        let mut schedule = schedule.iter();
        loop {
            let unfinished: Vec<usize> = (0..requests.len())
                .filter(|&i| !matches!(steps[i], Step::Done))
                .collect();
            let Some(&first) = unfinished.first() else {
                return cell;
            };
            let next = schedule
                .next()
                .map_or(first, |pick| unfinished[pick % unfinished.len()]);
            steps[next] = advance(&cell, requests[next], steps[next]);
        }
    }

    /// One step of `request`, as the memory store's strategies take it.
    fn advance(cell: &Cell, request: Request, step: Step) -> Step {
        let refused = |refusal: Refusal| {
            // As `Memory::apply` does: only the funds check is counted as a refusal.
            if matches!(refusal, Refusal::InsufficientFunds { .. }) {
                cell.ledger().record_refusal();
            }
            Step::Done
        };
        match (request.write, step) {
            (_, Step::Done) => Step::Done,
            (Writer::InPlace, _) => match cell.update_in_place(request.op, None) {
                Ok(_) => Step::Done,
                Err(AccountError::Refused(refusal)) => refused(refusal),
                Err(other) => panic!("without a key only the checks can refuse: {other}"),
            },
            (_, Step::Read) => {
                let read = cell.read();
                match request.op.apply_to(read) {
                    Ok(new_balance) => Step::Write { read, new_balance },
                    Err(refusal) => refused(refusal),
                }
            }
            (Writer::Overwrite, Step::Write { read, new_balance }) => {
                cell.overwrite(request.op, read, new_balance, None)
                    .expect("without a key a blind write always writes");
                Step::Done
            }
            (Writer::CompareAndWrite, Step::Write { read, new_balance }) => {
                let written = cell
                    .compare_and_write(request.op, read, new_balance, None)
                    .expect("without a key a compare-and-swap only succeeds or conflicts");
                if written {
                    Step::Done
                } else {
                    cell.ledger().record_retries(1, false);
                    Step::Read
                }
            }
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        (any::<bool>(), 1i64..=1_000).prop_map(|(deposit, amount)| {
            let amount = Amount::new(amount).expect("positive");
            if deposit {
                Op::Deposit(amount)
            } else {
                Op::Withdraw(amount)
            }
        })
    }

    /// An opening balance: small, so withdrawals get refused, or at the top, so deposits overflow.
    fn initial() -> impl Strategy<Value = i64> {
        prop_oneof![0i64..=5_000, (i64::MAX - 5_000)..=i64::MAX]
    }

    fn requests(writes: &'static [Writer]) -> impl Strategy<Value = Vec<Request>> {
        prop::collection::vec(
            (op(), prop::sample::select(writes)).prop_map(|(op, write)| Request { op, write }),
            1..=6,
        )
    }

    fn schedule() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0usize..6, 0..=40)
    }

    fn stats(cell: &Cell) -> crate::domain::ledger::Stats {
        cell.ledger()
            .stats(cell.read(), "test".into(), "none".into(), "memory")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_ledger_explains_the_balance_under_any_interleaving_of_any_strategies(
            initial in initial(),
            requests in requests(&[Writer::Overwrite, Writer::CompareAndWrite, Writer::InPlace]),
            schedule in schedule(),
        ) {
            let cell = run(initial, &requests, &schedule);

            let stats = stats(&cell);
            prop_assert_eq!(
                i128::from(stats.balance),
                stats.expected_balance - stats.lost_net
            );
            prop_assert_eq!(stats.lost_removed - stats.lost_added, stats.lost_net);
            prop_assert!(stats.lost_removed >= 0 && stats.lost_added >= 0);
            // Every request ended written or refused (an overflow is neither counted nor written).
            let overflowed = requests.len() as u64
                - stats.deposit_count
                - stats.withdrawal_count
                - stats.refused_count;
            prop_assert!(overflowed == 0 || initial > i64::MAX - 6_000);
        }

        #[test]
        fn compare_and_write_with_retry_and_update_in_place_lose_nothing_under_any_interleaving(
            initial in initial(),
            requests in requests(&[Writer::CompareAndWrite, Writer::InPlace]),
            schedule in schedule(),
        ) {
            let cell = run(initial, &requests, &schedule);

            let stats = stats(&cell);
            prop_assert_eq!(stats.lost_updates, 0);
            prop_assert_eq!(stats.lost_net, 0);
            prop_assert_eq!(i128::from(stats.balance), stats.expected_balance);
        }
    }

    #[test]
    fn two_overwrites_that_read_the_same_balance_lose_the_first_in_the_model() {
        // The model can fail: read, read, write, write is the lost update itself.
        let deposit = |amount| Request {
            op: Op::Deposit(Amount::new(amount).expect("positive")),
            write: Writer::Overwrite,
        };
        let schedule = [0, 1, 0, 0];

        let cell = run(100, &[deposit(5), deposit(7)], &schedule);

        let stats = stats(&cell);
        assert_eq!((stats.balance, stats.expected_balance), (107, 112));
        assert_eq!((stats.lost_updates, stats.lost_net), (1, 5));
    }
}
