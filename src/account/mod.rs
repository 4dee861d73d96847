//! The account as the HTTP layer sees it: a store, the mode's in-process guard, and the work.
//!
//! Everything that is the same in every store lives here, once: the `mutex` and `semaphore:N`
//! guards around the store's section, the work in the window, and the stop signal that cuts
//! requests short when the server stops.
//!
//! It sits above the stores (`crate::store`), which are built from the account's parts in
//! `crate::domain`; [`guard`] is the in-process `mutex` and `semaphore:N`, the same for every store.

pub(crate) mod guard;

use crate::account::guard::Guard;
use crate::config::AccountConfig;
use crate::domain::error::{AccountError, OpenError};
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::domain::ledger::Stats;
use crate::domain::mode::Mode;
use crate::domain::money::Op;
use crate::domain::work::Work;
use crate::store::Store;

/// A bank account with one balance, guarded (or not) by its mode.
#[derive(Debug)]
pub struct Account {
    mode: Mode,
    store_name: &'static str,
    opening_balance: i64,
    guard: Guard,
    store: Store,
    work: Work,
    key_ttl: std::time::Duration,
}

/// The answer to a request with an idempotency key: its own, or the one its key kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyed {
    /// The balance written, or why not: exactly what a request without a key would get.
    pub(crate) outcome: Result<i64, AccountError>,
    /// True when the answer is the one kept from an earlier request with the same key: this
    /// request changed nothing.
    pub(crate) replayed: bool,
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
            key_ttl: config.idempotency_ttl,
        })
    }

    /// Applies a deposit or withdrawal and returns the balance this request wrote.
    pub async fn apply(&self, op: Op) -> Result<i64, AccountError> {
        self.section(op, None).await
    }

    /// The mode's in-process guard around the store's section, with or without a key's claim.
    async fn section(&self, op: Op, claim: Option<&Claim<'_>>) -> Result<i64, AccountError> {
        let _permit = self.guard.enter(&self.work).await?;
        self.store.apply(&self.work, op, claim).await
    }

    /// Applies `op` at most once per `key` ([`crate::domain::idempotency`]): the first request with the key
    /// is applied (or refused) and its answer kept with the change; a repeat of the same request
    /// replays that answer; the key sent with another request is refused.
    pub(crate) async fn apply_keyed(&self, op: Op, key: &IdempotencyKey) -> Keyed {
        let fresh = |outcome| Keyed {
            outcome,
            replayed: false,
        };
        match self.store.lookup(key).await {
            Ok(Some(kept)) => return replay(kept, op, key),
            Ok(None) => {}
            Err(error) => return fresh(Err(error)),
        }
        let claim = Claim {
            key,
            op,
            ttl: self.key_ttl,
        };
        match self.section(op, Some(&claim)).await {
            Err(AccountError::Refused(refusal)) => {
                match self
                    .store
                    .remember(&claim, claim.answer(Err(refusal)))
                    .await
                {
                    Ok(true) => fresh(Err(refusal.into())),
                    Ok(false) => self.replay_kept(op, key).await,
                    Err(error) => {
                        // The refusal stands; a repeat will be judged afresh.
                        tracing::warn!(%error, "a refusal's answer was not kept for its key");
                        fresh(Err(refusal.into()))
                    }
                }
            }
            // Another request with the key was answered first: its answer is this one's too.
            Err(AccountError::KeyInUse) => self.replay_kept(op, key).await,
            other => fresh(other),
        }
    }

    /// The kept answer of a key another request just answered.
    async fn replay_kept(&self, op: Op, key: &IdempotencyKey) -> Keyed {
        match self.store.lookup(key).await {
            Ok(Some(kept)) => replay(kept, op, key),
            Ok(None) | Err(_) => Keyed {
                outcome: Err(AccountError::KeyInUse),
                replayed: false,
            },
        }
    }

    /// Cuts short every request still waiting or working: each answers 503 and writes nothing.
    pub(crate) fn stop(&self) {
        self.work.stop();
    }

    /// The balance now.
    pub(crate) async fn balance(&self) -> Result<i64, AccountError> {
        self.store.balance().await
    }

    /// The account-wide counters and the balance; consistent with each other whenever no request is
    /// in flight.
    pub(crate) async fn stats(&self) -> Result<Stats, AccountError> {
        let (ledger, balance) = self.store.ledger().await?;
        Ok(ledger.stats(
            balance,
            self.mode.to_string(),
            self.work.spec().to_string(),
            self.store_name,
        ))
    }

    /// The balance the account was opened with (`--initial-balance`).
    pub(crate) fn opening_balance(&self) -> i64 {
        self.opening_balance
    }

    /// Sets the balance and zeroes every counter, so runs can repeat without a restart. Under an
    /// in-process guard it waits for the requests in their section, as they wait for each other:
    /// a reset that landed inside a request's window would be erased by that request's write. The
    /// stores' own guards exclude it the same way (PostgreSQL's advisory and row locks, Redis's
    /// lease); the other modes see it and redo, or have no window.
    pub(crate) async fn reset(&self, balance: i64) -> Result<Stats, AccountError> {
        let _alone = self.guard.enter_alone(&self.work).await?;
        self.store.reset(&self.work, balance).await?;
        // Still alone: the stats are those of the reset, not of a request that came after it.
        self.stats().await
    }
}

/// The answer `kept` for `key`, replayed to a request asking for `op`: the same request gets the
/// same answer; another request is refused, its key being taken.
fn replay(kept: Remembered, op: Op, key: &IdempotencyKey) -> Keyed {
    if kept.op != op {
        return Keyed {
            outcome: Err(AccountError::KeyReused {
                key: key.as_str().to_string(),
                first: format!("{} of {}", kept.op.kind(), kept.op.amount()),
            }),
            replayed: false,
        };
    }
    Keyed {
        outcome: kept.outcome.map_err(AccountError::from),
        replayed: true,
    }
}
