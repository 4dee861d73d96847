//! The account as the HTTP layer sees it: a store, the mode's in-process guard, and the work.
//!
//! Everything that is the same in every store lives here, once: the `mutex` and `semaphore:N`
//! guards around the store's section, the work in the window, and the stop signal that cuts
//! requests short when the server stops.

use crate::config::AccountConfig;
use crate::error::{AccountError, OpenError};
use crate::guard::Guard;
use crate::ledger::Stats;
use crate::mode::Mode;
use crate::money::Op;
use crate::store::Store;
use crate::work::Work;

/// A bank account with one balance, guarded (or not) by its mode.
#[derive(Debug)]
pub struct Account {
    mode: Mode,
    store_name: &'static str,
    opening_balance: i64,
    guard: Guard,
    store: Store,
    work: Work,
}

impl Account {
    /// Opens the account `config` describes, creating it in its store if it does not exist.
    pub async fn open(config: &AccountConfig) -> Result<Self, OpenError> {
        Ok(Self {
            mode: config.mode,
            store_name: config.store.name(),
            opening_balance: config.initial_balance,
            guard: Guard::new(config.mode.in_process_permits()),
            store: Store::open(config).await?,
            work: Work::new(config.work),
        })
    }

    /// Applies a deposit or withdrawal and returns the balance this request wrote.
    pub async fn apply(&self, op: Op) -> Result<i64, AccountError> {
        let _permit = self.guard.enter(&self.work).await?;
        self.store.apply(&self.work, op).await
    }

    /// Cuts short every request still waiting or working: each answers 503 and writes nothing.
    pub fn stop(&self) {
        self.work.stop();
    }

    /// The balance now.
    pub async fn balance(&self) -> Result<i64, AccountError> {
        self.store.balance().await
    }

    /// The account-wide counters and the balance; consistent with each other whenever no request is
    /// in flight.
    pub async fn stats(&self) -> Result<Stats, AccountError> {
        let (ledger, balance) = self.store.ledger().await?;
        Ok(ledger.stats(
            balance,
            self.mode.to_string(),
            self.work.spec().to_string(),
            self.store_name,
        ))
    }

    /// The balance the account was opened with (`--initial-balance`).
    pub fn opening_balance(&self) -> i64 {
        self.opening_balance
    }

    /// Sets the balance and zeroes every counter, so runs can repeat without a restart. Under an
    /// in-process guard it waits for the requests in their section, as they wait for each other:
    /// a reset that landed inside a request's window would be erased by that request's write.
    pub async fn reset(&self, balance: i64) -> Result<Stats, AccountError> {
        let _alone = self.guard.enter_alone(&self.work).await?;
        self.store.reset(balance).await?;
        // Still alone: the stats are those of the reset, not of a request that came after it.
        self.stats().await
    }
}
