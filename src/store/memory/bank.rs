//! The bank in this process: every balance, its version and the bank's ledger behind one std
//! mutex, held for a few instructions at a time and never across the work.
//!
//! | mode | a move's section | a read of every balance |
//! |---|---|---|
//! | `unguarded` (and the in-process guards) | read, work, blind writes | one row at a time, the work between rows |
//! | `optimistic` | read with versions, work, write if no version moved, else redo | one snapshot |
//! | `atomic` | work, then read, check and write in one step | one snapshot |
//!
//! The unguarded writes are blind: each writes the balance it computed from what it read, and
//! the ledger learns from the balance it replaced whether it erased another's write.

use std::sync::{Mutex, MutexGuard};

use crate::domain::bank::{BankLedger, BankSpec, Move};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::work::Work;
use crate::store::ReadAll;

/// The bank's accounts in this process.
#[derive(Debug)]
pub(crate) struct MemoryBank {
    state: Mutex<State>,
    strategy: Strategy,
}

#[derive(Debug)]
struct State {
    balances: Vec<i64>,
    versions: Vec<u64>,
    ledger: BankLedger,
}

#[derive(Debug, Clone, Copy)]
enum Strategy {
    Unguarded,
    Optimistic { max_retries: u32 },
    Atomic,
}

impl MemoryBank {
    /// A bank opened as `spec` says, run in `mode`.
    pub(crate) fn open(spec: &BankSpec, mode: Mode, max_retries: u32) -> Result<Self, OpenError> {
        mode.check_store(StoreKind::Memory)?;
        let strategy = match mode {
            Mode::Optimistic => Strategy::Optimistic { max_retries },
            Mode::Atomic => Strategy::Atomic,
            _ => Strategy::Unguarded,
        };
        let openings = spec.openings();
        Ok(Self {
            state: Mutex::new(State {
                versions: vec![0; openings.len()],
                ledger: BankLedger::new(&openings),
                balances: openings,
            }),
            strategy,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; if something did, the numbers are still whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `mv` through the mode's section and returns the balances it wrote, in
    /// [`Move::writes`] order.
    pub(crate) async fn apply(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
    ) -> Result<Vec<i64>, AccountError> {
        match self.strategy {
            Strategy::Unguarded => self.unguarded(spec, work, mv).await,
            Strategy::Optimistic { max_retries } => {
                self.optimistic(spec, work, mv, max_retries).await
            }
            Strategy::Atomic => {
                work.run().await?;
                let mut state = self.state();
                let read = state.read(&mv.reads(spec));
                let written = state.settle(spec, mv, &read)?;
                Ok(state.write(mv, &read, &written))
            }
        }
    }

    /// Read, work, blind writes.
    async fn unguarded(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
    ) -> Result<Vec<i64>, AccountError> {
        let read = self.state().read(&mv.reads(spec));
        let written = self.state().settle(spec, mv, &read)?;
        work.run().await?;
        Ok(self.state().write(mv, &read, &written))
    }

    /// Read with versions, work, write only if none of the read accounts changed; else redo.
    async fn optimistic(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
        max_retries: u32,
    ) -> Result<Vec<i64>, AccountError> {
        let reads = mv.reads(spec);
        let mut retries = 0;
        loop {
            let (read, versions) = {
                let state = self.state();
                (state.read(&reads), state.versions_of(&reads))
            };
            let written = self.state().settle(spec, mv, &read)?;
            work.run().await?;
            let mut state = self.state();
            if state.versions_of(&reads) == versions {
                state.ledger.retries += u64::from(retries);
                return Ok(state.write(mv, &read, &written));
            }
            if retries == max_retries {
                state.ledger.retries += u64::from(retries);
                state.ledger.retries_exhausted += 1;
                return Err(AccountError::Contention { retries });
            }
            retries += 1;
        }
    }

    /// Every balance: one snapshot, or (unguarded) one row at a time with the work between rows,
    /// as a report that does something slow per account would.
    pub(crate) async fn read_all(&self, work: &Work) -> Result<ReadAll, AccountError> {
        if !matches!(self.strategy, Strategy::Unguarded) {
            return Ok(ReadAll::snapshot(self.state().balances.clone()));
        }
        let count = self.state().balances.len();
        let mut balances = Vec::with_capacity(count);
        for position in 0..count {
            if position > 0 {
                work.run().await?;
            }
            balances.push(self.state().balances[position]);
        }
        Ok(ReadAll::rows(balances))
    }

    /// The ledger and every balance, read together.
    pub(crate) fn ledger(&self) -> (BankLedger, Vec<i64>) {
        let state = self.state();
        (state.ledger.clone(), state.balances.clone())
    }

    /// Opens every account again with `balances`, and zeroes the ledger.
    pub(crate) fn reset(&self, balances: &[i64]) {
        let mut state = self.state();
        state.balances = balances.to_vec();
        for version in &mut state.versions {
            *version += 1;
        }
        state.ledger = BankLedger::new(balances);
    }
}

impl State {
    fn read(&self, positions: &[usize]) -> Vec<(usize, i64)> {
        positions.iter().map(|&p| (p, self.balances[p])).collect()
    }

    fn versions_of(&self, positions: &[usize]) -> Vec<u64> {
        positions.iter().map(|&p| self.versions[p]).collect()
    }

    /// The balances `mv` writes, or its refusal, counted.
    fn settle(
        &mut self,
        spec: &BankSpec,
        mv: Move,
        read: &[(usize, i64)],
    ) -> Result<Vec<(usize, i64)>, AccountError> {
        mv.settle(spec, read).map_err(|refusal| {
            self.ledger.refused += 1;
            refusal.into()
        })
    }

    /// Writes `written` blindly and records the move with what each write replaced.
    fn write(&mut self, mv: Move, read: &[(usize, i64)], written: &[(usize, i64)]) -> Vec<i64> {
        let entries: Vec<(usize, i64, i64)> = written
            .iter()
            .map(|&(position, balance)| {
                let was = read
                    .iter()
                    .find(|(p, _)| *p == position)
                    .map_or(balance, |(_, b)| *b);
                let overwritten = std::mem::replace(&mut self.balances[position], balance);
                self.versions[position] += 1;
                (position, was, overwritten)
            })
            .collect();
        self.ledger.record(mv, &entries);
        written.iter().map(|(_, balance)| *balance).collect()
    }
}
