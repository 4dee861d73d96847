//! What the sections share: the read of a move's accounts, the blind write with its ledger entry,
//! and the redo loop of the modes that roll back on a conflict.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use super::ledger::{entry, Count, Redos, Tally};
use super::BankDatabase;
use crate::domain::bank::Move;
use crate::domain::error::AccountError;
use crate::store::postgres::failure;

/// Balances and versions: `$1` bank, `$2` ids.
const READ: &str = "SELECT id, balance, version FROM racebank.bank_accounts
    WHERE bank = $1 AND id = ANY($2::text[])";

/// The blind write of one account, its counters and the move's entry ([`entry!`]): `$8` id, `$9`
/// the new balance, `$10` the credit, `$11` the debit, `$12` the balance it was computed from,
/// `$13` the version it must still have, or NULL. Answers the balance written, or no row if the
/// version moved. Every right-hand `balance` is the row's under its lock: what this write erases.
const WRITE: &str = concat!(
    "UPDATE racebank.bank_accounts
    SET balance = $9, replaced = balance, version = version + 1,
        credits = credits + $10::int8, debits = debits + $11::int8,
        lost_updates = lost_updates + (balance <> $12::int8)::int,
        destroyed = destroyed + greatest(balance::numeric - $12::int8, 0),
        created = created + greatest($12::int8 - balance::numeric, 0), ",
    entry!(),
    "
    WHERE bank = $1 AND id = $8 AND ($13::int8 IS NULL OR version = $13::int8)
    RETURNING balance"
);

/// What a read saw of one account.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub(super) position: usize,
    pub(super) balance: i64,
    pub(super) version: i64,
}

/// `(position, balance)` of each, as [`Move::settle`] takes them.
pub(super) fn balances(seen: &[Seen]) -> Vec<(usize, i64)> {
    seen.iter().map(|s| (s.position, s.balance)).collect()
}

/// Why one attempt at a section did not commit.
#[derive(Debug)]
pub(super) enum Attempt {
    /// PostgreSQL refused it (40001 serialization failure, 40P01 deadlock), or a version moved:
    /// worth redoing.
    Conflict { deadlock: bool },
    /// Anything else, as the client will see it.
    Failed(AccountError),
}

impl Attempt {
    /// The error of a section that does not redo.
    pub(super) fn into_error(self, doing: &str) -> AccountError {
        match self {
            Attempt::Failed(error) => error,
            Attempt::Conflict { .. } => AccountError::Unavailable {
                store: "postgres",
                detail: format!(
                    "{doing}: PostgreSQL refused it as a conflict; nothing was written"
                ),
            },
        }
    }
}

/// Maps an error before anything is committed: a conflict, or nothing written.
pub(super) fn before(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Attempt {
    move |error| {
        conflict(&error).unwrap_or_else(|| Attempt::Failed(failure::before_write(doing, &error)))
    }
}

/// Maps an error of a COMMIT: a conflict (nothing committed), or perhaps committed.
pub(super) fn during(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Attempt {
    move |error| {
        conflict(&error).unwrap_or_else(|| Attempt::Failed(failure::during_write(doing, &error)))
    }
}

fn conflict(error: &tokio_postgres::Error) -> Option<Attempt> {
    failure::is_conflict(error).then(|| Attempt::Conflict {
        deadlock: error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED),
    })
}

/// Reads the balances and versions of the accounts at `positions`, in that order, in one
/// statement.
pub(super) async fn read(
    client: &impl GenericClient,
    database: &BankDatabase,
    positions: &[usize],
) -> Result<Vec<Seen>, Attempt> {
    let ids: Vec<&str> = positions.iter().map(|&p| database.id(p)).collect();
    let statement = client
        .prepare_cached(READ)
        .await
        .map_err(before("preparing the read"))?;
    let rows = client
        .query(&statement, &[&database.bank, &ids])
        .await
        .map_err(before("reading the balances"))?;
    // By id, so that a read of every account costs one pass over the rows, not one per account.
    let by_id: HashMap<&str, &Row> = rows
        .iter()
        .filter_map(|row| Some((row.try_get::<_, &str>(0).ok()?, row)))
        .collect();
    let mut seen = Vec::with_capacity(positions.len());
    for &position in positions {
        let row = by_id
            .get(database.id(position))
            .ok_or_else(|| Attempt::Failed(super::ledger::missing(database, position)))?;
        let (balance, version) = (row.try_get(1), row.try_get(2));
        let (Ok(balance), Ok(version)) = (balance, version) else {
            return Err(Attempt::Failed(failure::undecodable(
                "a balance",
                "balance or version is not a bigint",
            )));
        };
        seen.push(Seen {
            position,
            balance,
            version,
        });
    }
    Ok(seen)
}

/// The credit and the debit `mv` makes to the account at `position`.
fn change(mv: Move, position: usize) -> (i64, i64) {
    let amount = mv.amount().get();
    let debited = match mv {
        Move::Deposit { .. } => false,
        Move::Withdraw { .. } => true,
        Move::Transfer { from, .. } => from == position,
    };
    if debited {
        (0, amount)
    } else {
        (amount, 0)
    }
}

/// Writes `balance` on the account at `position`, computed from `read`, if its version is still
/// `version` (when given); `count` is the move's bank-wide entry, or none. Answers the balance
/// written, or `None` when the version moved.
#[allow(
    clippy::too_many_arguments,
    reason = "the write's own parameters, each a column of the statement"
)]
pub(super) async fn write(
    client: &impl GenericClient,
    database: &BankDatabase,
    mv: Move,
    position: usize,
    balance: i64,
    read: i64,
    version: Option<i64>,
    count: Count,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let statement = client.prepare_cached(WRITE).await?;
    let (credit, debit) = change(mv, position);
    let [bank, deposits, withdrawals, transfers, transfer_sum, retries, deadlocks] =
        count.params(database);
    let row = client
        .query_opt(
            &statement,
            &[
                bank,
                deposits,
                withdrawals,
                transfers,
                transfer_sum,
                retries,
                deadlocks,
                &database.id(position),
                &balance,
                &credit,
                &debit,
                &read,
                &version,
            ],
        )
        .await?;
    row.map(|row| row.try_get(0)).transpose()
}

/// Writes every balance of `written` blindly, in order, the last write carrying the move's entry
/// (with `redos`). In a transaction (`autocommit` false) nothing is applied before the COMMIT, so
/// any error leaves nothing written. On its own, each write commits as it goes: the first one
/// lost on its way may have been applied, and a later one leaves the move half applied.
pub(super) async fn write_all(
    client: &impl GenericClient,
    database: &BankDatabase,
    mv: Move,
    seen: &[Seen],
    written: &[(usize, i64)],
    redos: Redos,
    autocommit: bool,
) -> Result<Vec<i64>, Attempt> {
    let mut balances = Vec::with_capacity(written.len());
    for (n, &(position, balance)) in written.iter().enumerate() {
        let read = seen
            .iter()
            .find(|s| s.position == position)
            .map_or(balance, |s| s.balance);
        let count = if n + 1 == written.len() {
            Count::of(mv, redos)
        } else {
            Count::none()
        };
        let outcome = write(client, database, mv, position, balance, read, None, count).await;
        match outcome {
            Ok(Some(balance)) => balances.push(balance),
            Ok(None) => return Err(Attempt::Failed(super::ledger::missing(database, position))),
            Err(error) if !autocommit => return Err(before("writing the balances")(error)),
            Err(error) if n == 0 => {
                return Err(Attempt::Failed(failure::during_write(
                    "writing the balances",
                    &error,
                )))
            }
            Err(error) => return Err(Attempt::Failed(half_applied(database, mv, n, &error))),
        }
    }
    Ok(balances)
}

/// A move whose first `applied` writes committed and whose next one failed: nothing undoes them.
fn half_applied(
    database: &BankDatabase,
    mv: Move,
    applied: usize,
    error: &tokio_postgres::Error,
) -> AccountError {
    let detail = failure::chain(error);
    tracing::warn!(bank = %database.bank, ?mv, applied, %detail, "postgres: a move is half applied");
    AccountError::OutcomeUnknown {
        store: "postgres",
        detail: format!(
            "{applied} of the move's writes were applied, each on its own, and the next failed \
             ({detail}); nothing undoes them"
        ),
    }
}

/// How long a section waits before it redoes a move that PostgreSQL aborted as a deadlock.
const DEADLOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The redo loop of a section that rolls back on conflict: after each attempt, [`Redo::after`]
/// says whether to go again (a conflict, up to `max_retries` redos) or what to answer; then
/// [`Redo::finish`] records the redos of a request that wrote nothing (those of one that wrote
/// rode along with its write).
#[derive(Debug)]
pub(super) struct Redo {
    redos: Redos,
    max_retries: u32,
}

impl Redo {
    /// No redo yet.
    pub(super) fn new(max_retries: u32) -> Self {
        Self {
            redos: Redos::default(),
            max_retries,
        }
    }

    /// The redos so far, for the next attempt's write to carry.
    pub(super) fn redos(&self) -> Redos {
        self.redos
    }

    /// The answer after this attempt, or `None` to redo it.
    ///
    /// After a deadlock the redo waits a moment first. The transaction that survived was waiting
    /// for a row this one held; PostgreSQL wakes it, but a row lock has no queue for newcomers,
    /// and a redo sent at once can take that row again before the survivor runs: the two meet in
    /// the same cycle a second later. The pause lets the survivor finish first.
    pub(super) async fn after(
        &mut self,
        attempt: Result<Vec<i64>, Attempt>,
    ) -> Option<Result<Vec<i64>, AccountError>> {
        match attempt {
            Ok(written) => Some(Ok(written)),
            Err(Attempt::Failed(error)) => Some(Err(error)),
            Err(Attempt::Conflict { deadlock }) => {
                self.redos.deadlocks += u32::from(deadlock);
                if self.redos.retries == self.max_retries {
                    return Some(Err(AccountError::Contention {
                        retries: self.redos.retries,
                    }));
                }
                self.redos.retries += 1;
                if deadlock {
                    tokio::time::sleep(DEADLOCK_PAUSE).await;
                }
                None
            }
        }
    }

    /// Records the redos of a request that wrote nothing, and answers `outcome`.
    pub(super) async fn finish(
        self,
        database: &BankDatabase,
        outcome: Result<Vec<i64>, AccountError>,
    ) -> Result<Vec<i64>, AccountError> {
        let exhausted = matches!(outcome, Err(AccountError::Contention { .. }));
        if outcome.is_err() && (self.redos != Redos::default() || exhausted) {
            let tally = Tally {
                refused: 0,
                redos: self.redos,
                exhausted,
            };
            database.record(tally).await;
        }
        outcome
    }
}

/// The whole redo loop: `$attempt` (an expression naming the redos so far as `$redos`, whose value
/// is the attempt's future) runs until [`Redo::after`] answers, then [`Redo::finish`] records the
/// redos of a request that wrote nothing. A macro rather than a function taking a closure: each
/// attempt borrows the section's connection, which a closure's returned future cannot hold.
macro_rules! redone {
    ($database:expr, $max_retries:expr, |$redos:ident| $attempt:expr) => {{
        let mut redo = super::section::Redo::new($max_retries);
        let outcome = loop {
            let $redos = redo.redos();
            if let Some(outcome) = redo.after($attempt.await).await {
                break outcome;
            }
        };
        redo.finish($database, outcome).await
    }};
}
pub(super) use redone;
