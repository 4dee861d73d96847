//! The memory store: the balance in this process, one file per strategy.
//!
//! | mode          | section                                   | loses updates? | overdraws? |
//! |---------------|-------------------------------------------|----------------|------------|
//! | `unguarded`   | read, work, blind write                   | yes            | yes        |
//! | `optimistic`  | read, work, compare-and-swap, else redo   | no             | no         |
//! | `atomic`      | work, then one indivisible update         | no             | no         |
//!
//! (`mutex` and `semaphore:N` are the unguarded section inside [`crate::account::guard`].) Fast, and gone
//! when the process stops: a crash loses the account. The PostgreSQL store is the durable one.

mod atomic;
pub(crate) mod bank;
mod cell;
mod keys;
mod optimistic;
mod unguarded;

use cell::Cell;

use crate::domain::error::{AccountError, OpenError};
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::domain::ledger::Ledger;
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::money::{Op, Refusal};
use crate::domain::work::Work;

/// The account in this process.
#[derive(Debug)]
pub(crate) struct Memory {
    cell: Cell,
    strategy: Strategy,
}

#[derive(Debug, Clone, Copy)]
enum Strategy {
    Unguarded,
    Optimistic { max_retries: u32 },
    Atomic,
}

impl Strategy {
    /// The strategy that runs `mode`; none for a mode this store does not run ([`Mode::runs_on`]
    /// says which, and a test checks that the two agree).
    fn of(mode: Mode, max_retries: u32) -> Option<Self> {
        match mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) | Mode::AccountLocks => {
                Some(Strategy::Unguarded)
            }
            Mode::Optimistic => Some(Strategy::Optimistic { max_retries }),
            Mode::Atomic => Some(Strategy::Atomic),
            Mode::ForUpdate
            | Mode::Advisory
            | Mode::RepeatableRead
            | Mode::Serializable
            | Mode::Lease
            | Mode::Fenced
            | Mode::FencedWriteOnly => None,
        }
    }
}

impl Memory {
    /// A new account holding `balance`, run in `mode`.
    pub(crate) fn open(mode: Mode, balance: i64, max_retries: u32) -> Result<Self, OpenError> {
        mode.check_store(StoreKind::Memory)?;
        let strategy = Strategy::of(mode, max_retries)
            .ok_or_else(|| OpenError::Store(format!("no in-memory strategy runs `{mode}`")))?;
        Ok(Self {
            cell: Cell::new(balance),
            strategy,
        })
    }

    /// Applies `op` and returns the balance this request wrote.
    pub(crate) async fn apply(
        &self,
        work: &Work,
        op: Op,
        claim: Option<&Claim<'_>>,
    ) -> Result<i64, AccountError> {
        let outcome = match self.strategy {
            Strategy::Unguarded => unguarded::apply(&self.cell, work, op, claim).await,
            Strategy::Optimistic { max_retries } => {
                optimistic::apply(&self.cell, work, op, max_retries, claim).await
            }
            Strategy::Atomic => atomic::apply(&self.cell, work, op, claim).await,
        };
        if let Err(AccountError::Refused(Refusal::InsufficientFunds { .. })) = outcome {
            self.cell.ledger().record_refusal();
        }
        outcome
    }

    /// The answer kept for `key`, if any.
    pub(crate) fn lookup(&self, key: &IdempotencyKey) -> Option<Remembered> {
        self.cell.keys().get(key)
    }

    /// Keeps `answer` for the claim's key unless the key has one already; says whether it did.
    /// A table full of live keys keeps nothing: the refusal stands and a repeat is judged afresh.
    pub(crate) fn remember(
        &self,
        claim: &Claim<'_>,
        answer: Remembered,
    ) -> Result<bool, AccountError> {
        let mut keys = self.cell.keys();
        if keys.get(claim.key).is_some() {
            return Ok(false);
        }
        keys.make_room()?;
        keys.insert(claim, answer);
        Ok(true)
    }

    /// The balance now.
    pub(crate) fn balance(&self) -> i64 {
        self.cell.read()
    }

    /// The ledger and the balance, read together.
    pub(crate) fn ledger(&self) -> (Ledger, i64) {
        let ledger = self.cell.ledger();
        (ledger.clone(), self.cell.read())
    }

    /// Sets the balance and zeroes every counter.
    pub(crate) fn reset(&self, balance: i64) {
        self.cell.reset(balance);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::keys::Keys;
    use super::{Cell, Memory, Strategy};
    use crate::domain::error::AccountError;
    use crate::domain::idempotency::{Claim, IdempotencyKey};
    use crate::domain::mode::{StoreKind, MATRIX};
    use crate::domain::money::{Amount, Op};
    use crate::domain::work::{Work, WorkSpec};

    #[tokio::test]
    async fn a_keyed_deposit_into_a_table_full_of_live_keys_is_refused_and_writes_nothing() {
        for strategy in [
            Strategy::Unguarded,
            Strategy::Optimistic { max_retries: 3 },
            Strategy::Atomic,
        ] {
            let memory = Memory {
                cell: Cell::with_keys(0, Keys::with_capacity(1)),
                strategy,
            };
            let work = Work::new(WorkSpec::None);
            let deposit = Op::Deposit(Amount::new(5).unwrap());
            let [first, second] =
                ["first", "second"].map(|key| IdempotencyKey::parse(key.as_bytes()).unwrap());
            let claim = |key| Claim {
                key,
                op: deposit,
                ttl: Duration::from_secs(60),
            };
            assert_eq!(
                memory.apply(&work, deposit, Some(&claim(&first))).await,
                Ok(5)
            );

            let refused = memory.apply(&work, deposit, Some(&claim(&second))).await;

            assert_eq!(
                refused,
                Err(AccountError::KeysFull { capacity: 1 }),
                "{strategy:?}"
            );
            assert_eq!(memory.balance(), 5, "{strategy:?}: nothing written");
            assert_eq!(memory.ledger().0.deposit_count, 1, "{strategy:?}");
            assert!(
                memory.lookup(&first).is_some(),
                "{strategy:?}: the live key is kept"
            );
        }
    }

    #[test]
    fn the_memory_store_runs_exactly_the_modes_the_matrix_gives_it() {
        for row in &MATRIX {
            let runs = row.mode.runs_on(StoreKind::Memory);
            assert_eq!(Strategy::of(row.mode, 1).is_some(), runs, "{}", row.name);
        }
    }
}
