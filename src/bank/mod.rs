//! The bank as the HTTP layer sees it: many accounts in a store, the mode's in-process guard, and
//! the work.
//!
//! It mirrors [`crate::account`] for the bank: the `mutex` and `semaphore:N` guards are bank-wide
//! here (one transfer at a time, whatever its accounts), `account-locks` takes one lock per account
//! ([`locks`]), and every other mode is the store's own. The work happens once per request: inside
//! the store's section, or, under `account-locks`, between the first lock and the rest.

pub(crate) mod locks;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::account::guard::Guard;
use crate::config::AccountConfig;
use crate::domain::bank::{BankSpec, BankStats, LockOrder, Move};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::mode::Mode;
use crate::domain::work::{Work, WorkSpec};
use crate::store::{BankStore, ReadAll};
use locks::AccountLocks;

/// A bank of accounts, guarded (or not) by the server's mode.
#[derive(Debug)]
pub(crate) struct Bank {
    spec: BankSpec,
    guard: Guard,
    locks: Option<(AccountLocks, LockOrder)>,
    store: BankStore,
    work: Work,
    /// The store's section under `account-locks`, whose work happened between the locks.
    no_work: Work,
    /// Deadlocks the in-process locks found (the stores count their own).
    deadlocks: AtomicU64,
}

impl Bank {
    /// Opens the bank `spec` describes in the store `config` names, run in `config`'s mode.
    pub(crate) async fn open(config: &AccountConfig, spec: &BankSpec) -> Result<Self, OpenError> {
        let locks = (config.mode == Mode::AccountLocks)
            .then(|| (AccountLocks::new(spec.len()), config.lock_order));
        let guard = Guard::new(if locks.is_some() {
            None
        } else {
            config.mode.in_process_permits()
        });
        Ok(Self {
            spec: spec.clone(),
            guard,
            locks,
            store: BankStore::open(config, spec).await?,
            work: Work::new(config.work),
            no_work: Work::new(WorkSpec::None),
            deadlocks: AtomicU64::new(0),
        })
    }

    /// The accounts, their households and opening balances.
    pub(crate) fn spec(&self) -> &BankSpec {
        &self.spec
    }

    /// Applies `mv` and returns the balances it wrote, in [`Move::writes`] order.
    pub(crate) async fn apply(&self, mv: Move) -> Result<Vec<i64>, AccountError> {
        let _permit = self.guard.enter(&self.work).await?;
        let Some((locks, order)) = &self.locks else {
            return self.store.apply(&self.spec, &self.work, mv).await;
        };
        let mut accounts = mv.reads(&self.spec);
        if *order == LockOrder::Id {
            self.spec.sort_by_id(&mut accounts);
        }
        let _held = match locks.lock(&accounts, &self.work, &self.spec).await {
            Ok(held) => held,
            Err(error) => {
                if matches!(error, AccountError::Deadlock(_)) {
                    self.deadlocks.fetch_add(1, Ordering::Relaxed);
                }
                return Err(error);
            }
        };
        self.store.apply(&self.spec, &self.no_work, mv).await
    }

    /// Every balance, read as the mode reads them: under the bank-wide guard, or every account's
    /// lock, where the mode has them.
    pub(crate) async fn read_all(&self) -> Result<ReadAll, AccountError> {
        let _permit = self.guard.enter(&self.work).await?;
        let Some((locks, _)) = &self.locks else {
            return self.store.read_all(&self.work).await;
        };
        let _held = locks.lock(&self.by_id(), &self.no_work, &self.spec).await?;
        self.store.read_all(&self.no_work).await
    }

    /// The balance of the account at `position` now.
    pub(crate) async fn balance(&self, position: usize) -> Result<i64, AccountError> {
        let (_, balances) = self.store.ledger().await?;
        // Every store answers every account's balance or an error; a short list is a store fault.
        balances.get(position).copied().ok_or_else(|| {
            AccountError::RolledBack(format!(
                "the store holds no balance for account `{}`; reset the bank (POST /bank/reset)",
                self.spec.id(position)
            ))
        })
    }

    /// Every account's position, by id.
    fn by_id(&self) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.spec.len()).collect();
        self.spec.sort_by_id(&mut all);
        all
    }

    /// The bank's accounting; consistent whenever no request is in flight.
    pub(crate) async fn stats(&self) -> Result<BankStats, AccountError> {
        let (mut ledger, balances) = self.store.ledger().await?;
        ledger.deadlocks += self.deadlocks.load(Ordering::Relaxed);
        Ok(ledger.stats(&self.spec, &balances))
    }

    /// Opens every account again with `balances` and zeroes the counters, waiting for the
    /// requests in the in-process guards as a reset of the account does.
    pub(crate) async fn reset(&self, balances: &[i64]) -> Result<BankStats, AccountError> {
        let _alone = self.guard.enter_alone(&self.work).await?;
        let _held = match &self.locks {
            Some((locks, _)) => Some(locks.lock(&self.by_id(), &self.no_work, &self.spec).await?),
            None => None,
        };
        self.store.reset(&self.work, balances).await?;
        self.deadlocks.store(0, Ordering::Relaxed);
        self.stats().await
    }

    /// Cuts short every request still waiting or working.
    pub(crate) fn stop(&self) {
        self.work.stop();
    }
}
