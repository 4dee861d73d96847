//! The bank in PostgreSQL: one row per account in `racebank.bank_accounts`, keyed by the bank (the
//! server's `--account` id, so every replica naming it shares the bank) and the account's id.
//!
//! Each mode is a move's section (read [`Move::reads`], decide with [`Move::settle`], write
//! [`Move::writes`]) as a backend engineer would write it, one file each:
//!
//! | mode | a move's section | file |
//! |---|---|---|
//! | `unguarded`, `mutex`, `semaphore:N`, `account-locks` | `SELECT` the read set; work; one blind `UPDATE ... SET balance = $computed` per account, each on its own (READ COMMITTED) | `unguarded.rs` |
//! | `for-update` | `BEGIN`; `SELECT ... FOR UPDATE` the first account of `--lock-order`; work; lock the rest one by one; write; `COMMIT`; redo on 40P01 | `for_update.rs` |
//! | `advisory` | `BEGIN`; `pg_advisory_xact_lock` per account, by id; read; work; write; `COMMIT` | `advisory.rs` |
//! | `optimistic` | read balances and versions; work; `BEGIN`; by id, `UPDATE ... WHERE version = $v` each written account and `FOR SHARE` check each one only read; `COMMIT`; redo if any moved | `optimistic.rs` |
//! | `repeatable-read`, `serializable` | the unguarded section in one transaction of that level; redo on 40001 / 40P01 | `isolation.rs` |
//! | `atomic` | work; then one statement of relative `UPDATE`s with the funds check inside | `atomic.rs` |
//!
//! (`mutex`, `semaphore:N` and `account-locks` are in-process guards around the unguarded section,
//! [`crate::bank`]: safe in one process, no help across replicas.)
//!
//! A read of every balance is one row at a time in the unguarded family (a `SELECT` per account,
//! the work between two), so it can see half a transfer; every other mode reads one snapshot.
//!
//! Every write records its ledger entry in its own statement ([`ledger`]); what the statement
//! erased is learnt from `replaced = balance` beside the new balance, as the account's store does.

mod advisory;
mod atomic;
mod for_update;
mod isolation;
mod ledger;
mod optimistic;
mod section;
mod unguarded;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::IsolationLevel;

use super::failure;
use crate::config::AccountConfig;
use crate::domain::bank::{BankLedger, BankSpec, LockOrder, Move};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::work::Work;
use crate::store::ReadAll;

/// A bank's rows in PostgreSQL, reached through a pool, run in one mode.
#[derive(Debug)]
pub(crate) struct PostgresBank {
    database: BankDatabase,
    strategy: Strategy,
}

/// What every strategy needs: the pool, the bank's key, and its accounts' ids by position.
pub(super) struct BankDatabase {
    pool: Pool,
    bank: String,
    ids: Vec<String>,
}

impl std::fmt::Debug for BankDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankDatabase")
            .field("bank", &self.bank)
            .field("accounts", &self.ids.len())
            .field("pool", &self.pool.status())
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Strategy {
    Unguarded,
    ForUpdate {
        order: LockOrder,
        max_retries: u32,
    },
    Advisory {
        max_retries: u32,
    },
    Optimistic {
        max_retries: u32,
    },
    Isolation {
        level: IsolationLevel,
        max_retries: u32,
    },
    Atomic {
        max_retries: u32,
    },
}

impl Strategy {
    /// The strategy that runs `mode` on a bank; none for a mode this store does not run.
    fn of(mode: Mode, max_retries: u32, order: LockOrder) -> Option<Self> {
        match mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) | Mode::AccountLocks => {
                Some(Strategy::Unguarded)
            }
            Mode::ForUpdate => Some(Strategy::ForUpdate { order, max_retries }),
            Mode::Advisory => Some(Strategy::Advisory { max_retries }),
            Mode::Optimistic => Some(Strategy::Optimistic { max_retries }),
            Mode::RepeatableRead => Some(Strategy::Isolation {
                level: IsolationLevel::RepeatableRead,
                max_retries,
            }),
            Mode::Serializable => Some(Strategy::Isolation {
                level: IsolationLevel::Serializable,
                max_retries,
            }),
            Mode::Atomic => Some(Strategy::Atomic { max_retries }),
            Mode::Lease | Mode::Fenced | Mode::FencedWriteOnly => None,
        }
    }
}

impl PostgresBank {
    /// Connects with a pool of `pool_size`, migrates the schema, and creates the bank's accounts
    /// that do not exist yet with their opening balances; those that exist are joined as they are,
    /// since other replicas may be using them.
    pub(crate) async fn open(
        config: &AccountConfig,
        spec: &BankSpec,
        url: &str,
        pool_size: usize,
    ) -> Result<Self, OpenError> {
        config.mode.check_store(StoreKind::Postgres)?;
        let strategy = Strategy::of(config.mode, config.max_retries, config.lock_order)
            .ok_or_else(|| {
                OpenError::Store(format!("no PostgreSQL strategy runs `{}`", config.mode))
            })?;
        let (pool, client) = super::connect(url, pool_size).await?;
        let ids: Vec<String> = (0..spec.len()).map(|p| spec.id(p).to_string()).collect();
        let bank = config.id.to_string();
        client
            .execute(ledger::OPEN, &[&bank, &ids, &spec.openings()])
            .await
            .map_err(|e| super::cannot(url, "create the bank's accounts", &e))?;
        drop(client);
        Ok(Self {
            database: BankDatabase { pool, bank, ids },
            strategy,
        })
    }

    /// Applies `mv` through the mode's section and returns the balances it wrote, in
    /// [`Move::writes`] order.
    pub(crate) async fn apply(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
    ) -> Result<Vec<i64>, AccountError> {
        let database = &self.database;
        let outcome = match self.strategy {
            Strategy::Unguarded => unguarded::apply(database, spec, work, mv).await,
            Strategy::ForUpdate { order, max_retries } => {
                for_update::apply(database, spec, work, mv, order, max_retries).await
            }
            Strategy::Advisory { max_retries } => {
                advisory::apply(database, spec, work, mv, max_retries).await
            }
            Strategy::Optimistic { max_retries } => {
                optimistic::apply(database, spec, work, mv, max_retries).await
            }
            Strategy::Isolation { level, max_retries } => {
                isolation::apply(database, spec, work, mv, level, max_retries).await
            }
            Strategy::Atomic { max_retries } => {
                atomic::apply(database, spec, work, mv, max_retries).await
            }
        };
        if let Err(AccountError::Refused(_)) = outcome {
            database.record(ledger::Tally::refused()).await;
        }
        outcome
    }

    /// Every balance: one row at a time with the work between rows in the unguarded family (as a
    /// report that does something slow per account would), one snapshot in every other mode.
    pub(crate) async fn read_all(&self, work: &Work) -> Result<ReadAll, AccountError> {
        let client = self.database.client().await?;
        if !matches!(self.strategy, Strategy::Unguarded) {
            let all: Vec<usize> = (0..self.database.ids.len()).collect();
            let seen = section::read(&client, &self.database, &all)
                .await
                .map_err(|attempt| attempt.into_error("reading every balance"))?;
            return Ok(ReadAll::snapshot(
                seen.iter().map(|seen| seen.balance).collect(),
            ));
        }
        let mut balances = Vec::with_capacity(self.database.ids.len());
        for position in 0..self.database.ids.len() {
            if position > 0 {
                work.run().await?;
            }
            let seen = section::read(&client, &self.database, &[position])
                .await
                .map_err(|attempt| attempt.into_error("reading a balance"))?;
            balances.push(seen[0].balance);
        }
        Ok(ReadAll::rows(balances))
    }

    /// The bank's ledger (every replica's writes) and every balance, from one statement and so
    /// one snapshot.
    pub(crate) async fn ledger(&self) -> Result<(BankLedger, Vec<i64>), AccountError> {
        let client = self.database.client().await?;
        ledger::read(&client, &self.database).await
    }

    /// Opens every account again with `balances` (in the bank's order) and zeroes the ledger, for
    /// every replica, in one transaction.
    pub(crate) async fn reset(&self, balances: &[i64]) -> Result<(), AccountError> {
        let mut client = self.database.client().await?;
        ledger::reset(&mut client, &self.database, balances).await
    }
}

impl BankDatabase {
    /// A connection from the pool, or 503 if none comes free in time.
    async fn client(&self) -> Result<Object, AccountError> {
        self.pool.get().await.map_err(failure::no_connection)
    }

    /// The id of the account at `position`.
    fn id(&self, position: usize) -> &str {
        &self.ids[position]
    }

    /// Adds refusals and redos of a request that wrote nothing to the ledger, outside any
    /// transaction that may roll back. Best effort: the answer stands whatever happens here.
    async fn record(&self, tally: ledger::Tally) {
        let recorded = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            ledger::record(&client, self, tally)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(error) = recorded.await {
            tracing::warn!(%error, ?tally, "postgres: a bank ledger count was not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use crate::domain::bank::LockOrder;
    use crate::domain::mode::{StoreKind, MATRIX};

    #[test]
    fn the_postgres_bank_runs_exactly_the_modes_the_matrix_gives_postgres() {
        for row in &MATRIX {
            let runs = row.mode.runs_on(StoreKind::Postgres);
            let strategy = Strategy::of(row.mode, 1, LockOrder::Id);
            assert_eq!(strategy.is_some(), runs, "{}", row.name);
        }
    }
}
