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
mod cell;
mod keys;
mod optimistic;
mod unguarded;

use cell::Cell;

use crate::account::error::{AccountError, OpenError};
use crate::account::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::account::ledger::Ledger;
use crate::account::mode::Mode;
use crate::account::money::{Op, Refusal};
use crate::account::work::Work;

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

impl Memory {
    /// A new account holding `balance`, run in `mode`.
    pub(crate) fn open(mode: Mode, balance: i64, max_retries: u32) -> Result<Self, OpenError> {
        let strategy = match mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) => Strategy::Unguarded,
            Mode::Optimistic => Strategy::Optimistic { max_retries },
            Mode::Atomic => Strategy::Atomic,
            other => {
                return Err(OpenError::UnsupportedMode {
                    mode: other.to_string(),
                    store: "memory",
                    hint: "the memory store runs unguarded, mutex, semaphore:N, optimistic and \
                           atomic; add --store postgres or --store redis",
                })
            }
        };
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
    pub(crate) fn remember(&self, claim: &Claim<'_>, answer: Remembered) -> bool {
        let mut keys = self.cell.keys();
        let free = keys.get(claim.key).is_none();
        if free {
            keys.insert(claim, answer);
        }
        free
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
