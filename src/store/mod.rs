//! Where the balance lives: one folder per store, one file per strategy of a store.
//!
//! - [`memory`]: this process. The default; needs nothing.
//! - [`postgres`]: a row in PostgreSQL, shared by every replica that names the same account.
//! - [`redis`]: Redis, shared by replicas: leases, fencing tokens and Lua scripts.
//!
//! Every store offers the same few operations to [`crate::account::Account`], which adds what is
//! the same everywhere (the in-process guards, the work, the stop signal). A store keeps its own
//! ledger where its balance is, so that `/stats` of any replica is the account's, not the replica's.
//!
//! The PostgreSQL and Redis futures are boxed where [`Store`] dispatches to them: they are several
//! kilobytes each, and unboxed they would make every request's future that large, the memory
//! store's too, to be copied on every request (BENCHMARKS.md). A request to a database pays one
//! allocation beside its network round trips.

mod memory;
mod postgres;
mod redis;

use crate::config::{AccountConfig, StoreConfig};
use crate::domain::bank::{BankLedger, BankSpec, Move};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::domain::ledger::Ledger;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// An opened store holding one account.
#[derive(Debug)]
pub(crate) enum Store {
    Memory(memory::Memory),
    Postgres(postgres::Postgres),
    Redis(self::redis::Redis),
}

impl Store {
    /// Opens (creating if needed) the account `config` names, ready to run its mode.
    pub(crate) async fn open(config: &AccountConfig) -> Result<Self, OpenError> {
        match &config.store {
            StoreConfig::Memory => Ok(Store::Memory(memory::Memory::open(
                config.mode,
                config.initial_balance,
                config.max_retries,
            )?)),
            StoreConfig::Postgres { url, pool_size } => Ok(Store::Postgres(
                postgres::Postgres::open(config, url, *pool_size).await?,
            )),
            StoreConfig::Redis { url } => {
                Ok(Store::Redis(self::redis::Redis::open(config, url).await?))
            }
        }
    }

    /// Applies `op` through the mode's section and returns the balance this request wrote.
    ///
    /// With a `claim`, the balance written is kept as the key's answer in the same step as the
    /// write; if the key was answered meanwhile, nothing is written and the answer is
    /// [`AccountError::KeyInUse`].
    pub(crate) async fn apply(
        &self,
        work: &Work,
        op: Op,
        claim: Option<&Claim<'_>>,
    ) -> Result<i64, AccountError> {
        match self {
            Store::Memory(memory) => memory.apply(work, op, claim).await,
            Store::Postgres(postgres) => Box::pin(postgres.apply(work, op, claim)).await,
            Store::Redis(redis) => Box::pin(redis.apply(work, op, claim)).await,
        }
    }

    /// The answer kept for `key`, unless it expired.
    pub(crate) async fn lookup(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Remembered>, AccountError> {
        match self {
            Store::Memory(memory) => Ok(memory.lookup(key)),
            Store::Postgres(postgres) => Box::pin(postgres.lookup(key)).await,
            Store::Redis(redis) => Box::pin(redis.lookup(key)).await,
        }
    }

    /// Keeps `answer` (a refusal: it changed no balance) for the claim's key unless the key has one
    /// already; says whether it did.
    pub(crate) async fn remember(
        &self,
        claim: &Claim<'_>,
        answer: Remembered,
    ) -> Result<bool, AccountError> {
        match self {
            Store::Memory(memory) => memory.remember(claim, answer),
            Store::Postgres(postgres) => Box::pin(postgres.remember(claim, answer)).await,
            Store::Redis(redis) => Box::pin(redis.remember(claim, answer)).await,
        }
    }

    /// The balance now.
    pub(crate) async fn balance(&self) -> Result<i64, AccountError> {
        match self {
            Store::Memory(memory) => Ok(memory.balance()),
            Store::Postgres(postgres) => Box::pin(postgres.balance()).await,
            Store::Redis(redis) => Box::pin(redis.balance()).await,
        }
    }

    /// The account-wide ledger and the balance, read together.
    pub(crate) async fn ledger(&self) -> Result<(Ledger, i64), AccountError> {
        match self {
            Store::Memory(memory) => Ok(memory.ledger()),
            Store::Postgres(postgres) => Box::pin(postgres.ledger()).await,
            Store::Redis(redis) => Box::pin(redis.ledger()).await,
        }
    }

    /// Sets the balance and zeroes every counter, for every replica.
    pub(crate) async fn reset(&self, work: &Work, balance: i64) -> Result<(), AccountError> {
        match self {
            Store::Memory(memory) => {
                memory.reset(balance);
                Ok(())
            }
            Store::Postgres(postgres) => Box::pin(postgres.reset(balance)).await,
            Store::Redis(redis) => Box::pin(redis.reset(work, balance)).await,
        }
    }
}

/// Every balance of the bank, read by one request, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadAll {
    pub(crate) balances: Vec<i64>,
    /// True when every balance was read at one moment; false when one at a time.
    pub(crate) snapshot: bool,
}

impl ReadAll {
    /// Balances read at one moment.
    pub(crate) fn snapshot(balances: Vec<i64>) -> Self {
        Self {
            balances,
            snapshot: true,
        }
    }

    /// Balances read one at a time.
    pub(crate) fn rows(balances: Vec<i64>) -> Self {
        Self {
            balances,
            snapshot: false,
        }
    }
}

/// An opened store holding a bank of many accounts ([`crate::domain::bank`]).
#[derive(Debug)]
pub(crate) enum BankStore {
    Memory(memory::bank::MemoryBank),
    Postgres(postgres::bank::PostgresBank),
    Redis(self::redis::bank::RedisBank),
}

impl BankStore {
    /// Opens (creating if needed) the bank `spec` describes, ready to run the account's mode.
    pub(crate) async fn open(config: &AccountConfig, spec: &BankSpec) -> Result<Self, OpenError> {
        match &config.store {
            StoreConfig::Memory => Ok(BankStore::Memory(memory::bank::MemoryBank::open(
                spec,
                config.mode,
                config.max_retries,
            )?)),
            StoreConfig::Postgres { url, pool_size } => Ok(BankStore::Postgres(
                postgres::bank::PostgresBank::open(config, spec, url, *pool_size).await?,
            )),
            StoreConfig::Redis { url } => Ok(BankStore::Redis(
                self::redis::bank::RedisBank::open(config, url, spec).await?,
            )),
        }
    }

    /// Applies `mv` through the mode's section and returns the balances it wrote, in
    /// [`Move::writes`] order.
    pub(crate) async fn apply(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
    ) -> Result<Vec<i64>, AccountError> {
        match self {
            BankStore::Memory(memory) => memory.apply(spec, work, mv).await,
            BankStore::Postgres(postgres) => Box::pin(postgres.apply(spec, work, mv)).await,
            BankStore::Redis(redis) => Box::pin(redis.apply(spec, work, mv)).await,
        }
    }

    /// Every balance, as the mode reads them.
    pub(crate) async fn read_all(&self, work: &Work) -> Result<ReadAll, AccountError> {
        match self {
            BankStore::Memory(memory) => memory.read_all(work).await,
            BankStore::Postgres(postgres) => Box::pin(postgres.read_all(work)).await,
            BankStore::Redis(redis) => Box::pin(redis.read_all(work)).await,
        }
    }

    /// The bank's ledger and every balance, read together.
    pub(crate) async fn ledger(&self) -> Result<(BankLedger, Vec<i64>), AccountError> {
        match self {
            BankStore::Memory(memory) => Ok(memory.ledger()),
            BankStore::Postgres(postgres) => Box::pin(postgres.ledger()).await,
            BankStore::Redis(redis) => Box::pin(redis.ledger()).await,
        }
    }

    /// Opens every account again with `balances` (in the bank's order) and zeroes the ledger, for
    /// every replica.
    pub(crate) async fn reset(&self, work: &Work, balances: &[i64]) -> Result<(), AccountError> {
        match self {
            BankStore::Memory(memory) => {
                memory.reset(balances);
                Ok(())
            }
            BankStore::Postgres(postgres) => Box::pin(postgres.reset(balances)).await,
            BankStore::Redis(redis) => Box::pin(redis.reset(work, balances)).await,
        }
    }
}
