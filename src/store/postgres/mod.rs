//! The PostgreSQL store: the balance is a row, shared by every replica that names the same account.
//!
//! Each mode is the read -> work -> write section written the way a backend engineer would write
//! it, one file each:
//!
//! | mode                              | section                                                           | file           |
//! |-----------------------------------|-------------------------------------------------------------------|----------------|
//! | `unguarded`, `mutex`, `semaphore:N` | `SELECT`; work; `UPDATE ... SET balance = $computed` (READ COMMITTED) | `unguarded.rs` |
//! | `for-update`                      | `BEGIN; SELECT ... FOR UPDATE`; work; `UPDATE`; `COMMIT`          | `for_update.rs` |
//! | `advisory`                        | `pg_advisory_xact_lock(account)` around read, work, write         | `advisory.rs`  |
//! | `optimistic`                      | read balance and version; work; `UPDATE ... WHERE version = $v`; redo | `optimistic.rs` |
//! | `repeatable-read`, `serializable` | the section in that isolation level; redo on 40001 / 40P01        | `isolation.rs` |
//! | `atomic`                          | work; one `UPDATE ... SET balance = balance + $d WHERE ... RETURNING` | `atomic.rs`  |
//!
//! (`mutex` and `semaphore:N` are the unguarded section inside [`crate::account::guard`]: safe in one
//! process, and no help at all across replicas.)
//!
//! Every request holds one pooled connection for its whole section, work included, as a handler
//! that reads, works and writes does. So the pool is a guard too: a pool smaller than the load
//! admits only that many requests into the window at once, and a pool of one hides the race.
//!
//! Opening creates the schema if needed ([`migrate`]) and the account if it is missing, with the
//! initial balance; an account that exists is joined as it is, never overwritten, because other
//! replicas may be using it. The ledger lives beside the balance ([`ledger`]).

mod advisory;
mod atomic;
pub(crate) mod bank;
mod failure;
mod for_update;
mod isolation;
mod keys;
mod ledger;
mod migrate;
mod optimistic;
mod unguarded;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, NoTls};

use crate::config::AccountConfig;
use crate::domain::error::{AccountError, OpenError};
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::domain::ledger::Ledger;
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::money::{Op, Refusal};
use crate::domain::work::Work;

/// How long a request waits for a pooled connection before it answers 503: long enough to ride
/// out a burst, short enough that a client is not left hanging on a saturated pool.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How often each replica deletes the account's expired keys, in batches until none is left: so a
/// backlog of any size is worked off, and the table holds about rate x TTL rows, no more.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The account's row in PostgreSQL, reached through a pool, run in one mode.
#[derive(Debug)]
pub(crate) struct Postgres {
    database: Database,
    strategy: Strategy,
    /// The task purging expired idempotency keys, stopped when the store is dropped.
    purger: tokio::task::JoinHandle<()>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.purger.abort();
    }
}

/// What every strategy needs: the pool and the account's id.
pub(super) struct Database {
    pool: Pool,
    account: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("account", &self.account)
            .field("pool", &self.pool.status())
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Strategy {
    Unguarded,
    ForUpdate,
    Advisory,
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
    /// The strategy that runs `mode`; none for a mode this store does not run ([`Mode::runs_on`]
    /// says which, and a test checks that the two agree).
    fn of(mode: Mode, max_retries: u32) -> Option<Self> {
        match mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) | Mode::AccountLocks => {
                Some(Strategy::Unguarded)
            }
            Mode::ForUpdate => Some(Strategy::ForUpdate),
            Mode::Advisory => Some(Strategy::Advisory),
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

impl Postgres {
    /// Connects with a pool of `pool_size`, migrates the schema, and creates the account if it
    /// does not exist yet.
    pub(crate) async fn open(
        config: &AccountConfig,
        url: &str,
        pool_size: usize,
    ) -> Result<Self, OpenError> {
        config.mode.check_store(StoreKind::Postgres)?;
        let strategy = Strategy::of(config.mode, config.max_retries).ok_or_else(|| {
            OpenError::Store(format!("no PostgreSQL strategy runs `{}`", config.mode))
        })?;
        let (pool, client) = connect(url, pool_size).await?;
        client
            .execute(
                "INSERT INTO racebank.accounts (id, balance, initial_balance) VALUES ($1, $2, $2)
                 ON CONFLICT (id) DO NOTHING",
                &[&config.id.as_str(), &config.initial_balance],
            )
            .await
            .map_err(|e| cannot(url, "create the account", &e))?;
        let purger = tokio::spawn(purge_expired(pool.clone(), config.id.to_string()));
        Ok(Self {
            database: Database {
                pool,
                account: config.id.to_string(),
            },
            strategy,
            purger,
        })
    }

    /// Applies `op` through the mode's section and returns the balance this request wrote.
    pub(crate) async fn apply(
        &self,
        work: &Work,
        op: Op,
        claim: Option<&Claim<'_>>,
    ) -> Result<i64, AccountError> {
        let database = &self.database;
        let outcome = match self.strategy {
            Strategy::Unguarded => unguarded::apply(database, work, op, claim).await,
            Strategy::ForUpdate => for_update::apply(database, work, op, claim).await,
            Strategy::Advisory => advisory::apply(database, work, op, claim).await,
            Strategy::Optimistic { max_retries } => {
                optimistic::apply(database, work, op, max_retries, claim).await
            }
            Strategy::Isolation { level, max_retries } => {
                isolation::apply(database, work, op, level, max_retries, claim).await
            }
            Strategy::Atomic { max_retries } => {
                atomic::apply(database, work, op, max_retries, claim).await
            }
        };
        if let Err(AccountError::Refused(Refusal::InsufficientFunds { .. })) = outcome {
            database.record(1, 0, false).await;
        }
        outcome
    }

    /// The answer kept for `key`, unless it expired. An expired row of this key is deleted on the
    /// way, so the key is free for a new request (the others go in the background purge).
    pub(crate) async fn lookup(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Remembered>, AccountError> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(keys::LOOKUP)
            .await
            .map_err(|e| failure::before_write("preparing the key lookup", &e))?;
        let row = client
            .query_opt(&statement, &[&self.database.account, &key.as_str()])
            .await
            .map_err(|e| failure::before_write("looking up the Idempotency-Key", &e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        keys::from_row(&row)
            .map(Some)
            .map_err(|detail| failure::undecodable("the answer kept for the key", &detail))
    }

    /// Keeps a refusal's `answer` for the claim's key unless the key has one; says whether it did.
    pub(crate) async fn remember(
        &self,
        claim: &Claim<'_>,
        answer: Remembered,
    ) -> Result<bool, AccountError> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(keys::REMEMBER)
            .await
            .map_err(|e| failure::before_write("preparing to keep the answer", &e))?;
        let inserted = client
            .execute(
                &statement,
                &[
                    &self.database.account,
                    &claim.key.as_str(),
                    &answer.op.kind(),
                    &answer.op.amount(),
                    &answer.status(),
                    &answer.balance(),
                    &claim.ttl_millis(),
                ],
            )
            .await
            .map_err(|e| failure::before_write("keeping the answer for the key", &e))?;
        Ok(inserted == 1)
    }

    /// The balance now.
    pub(crate) async fn balance(&self) -> Result<i64, AccountError> {
        let client = self.database.client().await?;
        unguarded::read(&client, &self.database, unguarded::READ).await
    }

    /// The account-wide ledger (every replica's writes) and the balance, from one snapshot.
    pub(crate) async fn ledger(&self) -> Result<(Ledger, i64), AccountError> {
        let client = self.database.client().await?;
        let statement = client
            .prepare_cached(ledger::READ)
            .await
            .map_err(|e| failure::before_write("preparing the ledger read", &e))?;
        let row = client
            .query_opt(&statement, &[&self.database.account])
            .await
            .map_err(|e| failure::before_write("reading the ledger", &e))?
            .ok_or_else(|| failure::missing_account(&self.database.account))?;
        ledger::from_row(&row).map_err(|detail| failure::undecodable("the ledger", &detail))
    }

    /// Sets the balance and clears the ledger (its shards and the entries in the account row) for
    /// every replica, in one transaction.
    pub(crate) async fn reset(&self, balance: i64) -> Result<(), AccountError> {
        let mut client = self.database.client().await?;
        let account = &self.database.account;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| failure::before_write("starting the reset", &e))?;
        // Every guard a write can hold excludes the reset too: the advisory lock (`advisory`), and
        // the row lock the upsert below waits for (`for-update`); `optimistic` and the isolation
        // modes see the version move and redo. Without the advisory lock, a reset landing in an
        // `advisory` write's window was erased by that write.
        transaction
            .execute(advisory::LOCK, &[account])
            .await
            .map_err(|e| failure::before_write("taking the advisory lock", &e))?;
        transaction
            .execute(
                "INSERT INTO racebank.accounts (id, balance, initial_balance) VALUES ($1, $2, $2)
                 ON CONFLICT (id) DO UPDATE SET balance = excluded.balance,
                     initial_balance = excluded.initial_balance, replaced = accounts.balance,
                     version = accounts.version + 1, deposit_count = 0, deposit_sum = 0,
                     withdrawal_count = 0, withdrawal_sum = 0, retries = 0",
                &[account, &balance],
            )
            .await
            .map_err(|e| failure::before_write("resetting the balance", &e))?;
        transaction
            .execute("DELETE FROM racebank.ledger WHERE account = $1", &[account])
            .await
            .map_err(|e| failure::before_write("clearing the ledger", &e))?;
        // Answers of the old run must not replay into the new one.
        transaction
            .execute(
                "DELETE FROM racebank.idempotency WHERE account = $1",
                &[account],
            )
            .await
            .map_err(|e| failure::before_write("clearing the idempotency keys", &e))?;
        transaction
            .commit()
            .await
            .map_err(|e| failure::during_write("committing the reset", &e))
    }
}

impl Database {
    /// A connection from the pool, or 503 if none comes free in time.
    async fn client(&self) -> Result<Object, AccountError> {
        self.pool.get().await.map_err(failure::no_connection)
    }

    /// Adds refusals and redos to the ledger, outside any transaction that may roll back.
    /// Best effort: the answer to the client stands whatever happens here, and these counters do
    /// not enter the identity `balance == expected_balance - lost_net`.
    async fn record(&self, refused: i64, retries: i64, exhausted: bool) {
        let recorded = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            let statement = client
                .prepare_cached(ledger::RECORD)
                .await
                .map_err(|e| e.to_string())?;
            client
                .execute(
                    &statement,
                    &[
                        &self.account,
                        &ledger::random_shard(),
                        &refused,
                        &retries,
                        &i64::from(exhausted),
                    ],
                )
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(error) = recorded.await {
            tracing::warn!(%error, refused, retries, exhausted, "postgres: a ledger count was not recorded");
        }
    }
}

/// Every [`PURGE_EVERY`], deletes the account's expired keys in batches until a batch comes back
/// short. Best effort: a lookup ignores expired keys anyway, and a failure is tried again later.
async fn purge_expired(pool: Pool, account: String) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        let mut purged = 0;
        loop {
            match client.execute(keys::PURGE, &[&account]).await {
                Ok(deleted) => {
                    purged += deleted;
                    if deleted < keys::PURGE_BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "postgres: expired idempotency keys were not purged");
                    break;
                }
            }
        }
        if purged > 0 {
            tracing::debug!(purged, %account, "postgres: expired idempotency keys purged");
        }
    }
}

/// The pool: at most `pool_size` connections, a bounded wait for one, and its prepared statements
/// cached per connection.
/// A pool of `pool_size` to `url` and one of its connections, with the schema migrated: what
/// opening the account and opening the bank both start with.
async fn connect(url: &str, pool_size: usize) -> Result<(Pool, Object), OpenError> {
    let pool = pool(url, pool_size)?;
    let mut client = pool.get().await.map_err(|error| {
        OpenError::Store(format!(
            "cannot reach PostgreSQL at {}: {}; {}",
            redacted(url),
            failure::pool_error(&error),
            failure::open_hint(&error, url)
        ))
    })?;
    migrate::migrate(&mut client)
        .await
        .map_err(|e| cannot(url, "migrate the racebank schema", &e))?;
    Ok((pool, client))
}

/// Why opening failed at `what`, naming the server without its password.
fn cannot(url: &str, what: &str, error: &tokio_postgres::Error) -> OpenError {
    OpenError::Store(format!(
        "cannot {what} in PostgreSQL at {}: {error}",
        redacted(url)
    ))
}

fn pool(url: &str, pool_size: usize) -> Result<Pool, OpenError> {
    let mut pg_config: tokio_postgres::Config = url.parse().map_err(|e| {
        OpenError::Store(format!("`{}` is not a PostgreSQL URL: {e}", redacted(url)))
    })?;
    let options = with_generic_plans(pg_config.get_options());
    pg_config
        .application_name("racebank")
        .options(&options)
        .connect_timeout(CONNECT_TIMEOUT);
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            // A closed connection is noticed and replaced; an open one is reused without a query.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(pool_size)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| OpenError::Store(format!("cannot build the PostgreSQL pool: {e}")))
}

/// The connection's server options: `given` (the URL's `options`), and generic plans unless
/// `given` chooses a plan cache mode itself.
///
/// With generic plans a statement is planned once per connection, not at every execution. Left to
/// itself, PostgreSQL keeps planning the bank's transfer (two data-modifying CTEs and a subquery)
/// anew at each bind, because its custom plans look no dearer than the generic one, and the
/// planning cost more CPU than the transfer did (BENCHMARKS.md, "The bank"). Every statement here
/// looks rows up by key, where the generic plan is the custom one.
fn with_generic_plans(given: Option<&str>) -> String {
    const GENERIC: &str = "-c plan_cache_mode=force_generic_plan";
    match given {
        Some(given) if given.contains("plan_cache_mode") => given.to_string(),
        Some(given) if !given.trim().is_empty() => format!("{given} {GENERIC}"),
        _ => GENERIC.to_string(),
    }
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, with_generic_plans, Strategy};
    use crate::domain::mode::{StoreKind, MATRIX};

    #[test]
    fn the_postgres_store_runs_exactly_the_modes_the_matrix_gives_it() {
        for row in &MATRIX {
            let runs = row.mode.runs_on(StoreKind::Postgres);
            assert_eq!(Strategy::of(row.mode, 1).is_some(), runs, "{}", row.name);
        }
    }

    #[test]
    fn connections_plan_once_unless_the_url_chooses_a_plan_cache_mode() {
        let generic = "-c plan_cache_mode=force_generic_plan";
        assert_eq!(with_generic_plans(None), generic);
        assert_eq!(with_generic_plans(Some("")), generic);
        assert_eq!(
            with_generic_plans(Some("-c statement_timeout=5s")),
            format!("-c statement_timeout=5s {generic}")
        );
        assert_eq!(
            with_generic_plans(Some("-c plan_cache_mode=auto")),
            "-c plan_cache_mode=auto"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("postgres://me:secret@127.0.0.1/db"),
            "postgres://me:***@127.0.0.1/db"
        );
        assert_eq!(
            redacted("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
