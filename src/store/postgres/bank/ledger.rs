//! The bank's ledger in PostgreSQL: each account's counters in its own row, and the bank-wide
//! counts in the rows too, so that `/stats` of any replica describes every replica's writes.
//!
//! A write changes an account's balance and its counters in one `UPDATE`; the move's bank-wide
//! entry (a deposit, a withdrawal or a transfer, and the redos it needed) is added to counters of
//! one of the rows the move writes, in the same `UPDATE` ([`entry!`], migration 0006), so a move
//! writes its own rows and nothing else. Refusals, and the redos of a request that wrote nothing,
//! are upserts of their own into `racebank.bank_ledger` shards ([`record`]): they change no
//! balance, so the identity `total == expected_total + money_created - money_destroyed` never
//! depends on them. `/stats` adds the rows' counters to the shards' ([`read`]).

use deadpool_postgres::{GenericClient, Object};

use super::BankDatabase;
use crate::domain::bank::{AccountLedger, BankLedger, Move};
use crate::domain::error::AccountError;
use crate::store::postgres::failure;
use crate::store::postgres::ledger::random_shard;

/// Creates the bank's missing accounts, joining those that exist: `$1` bank, `$2` ids, `$3`
/// opening balances.
pub(super) const OPEN: &str = "
    INSERT INTO racebank.bank_accounts (bank, id, balance, opening)
    SELECT $1, s.id, s.opening, s.opening FROM unnest($2::text[], $3::int8[]) AS s(id, opening)
    ON CONFLICT (bank, id) DO NOTHING";

/// The `SET` items that add a move's bank-wide entry to the row an `UPDATE` writes: `$2`
/// deposits, `$3` withdrawals, `$4` transfers, `$5` the amount transferred, `$6` redos, `$7`
/// deadlocks redone, all zero when another write of the move carries its entry ([`Count`]). The
/// write's own parameters start at `$8`, after `$1` the bank.
macro_rules! entry {
    () => {
        "deposits = deposits + $2::int8, withdrawals = withdrawals + $3::int8,
         transfers = transfers + $4::int8, transfer_sum = transfer_sum + $5::int8,
         retries = retries + $6::int8, deadlocks = deadlocks + $7::int8"
    };
}
pub(super) use entry;

/// The parameters `$2` to `$7` of [`entry!`]: a move's bank-wide entry, or none.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Count {
    deposits: i64,
    withdrawals: i64,
    transfers: i64,
    transfer_sum: i64,
    retries: i64,
    deadlocks: i64,
}

impl Count {
    /// The entry of `mv`, applied after `redos`.
    pub(super) fn of(mv: Move, redos: Redos) -> Self {
        let one = |yes: bool| i64::from(yes);
        Self {
            deposits: one(matches!(mv, Move::Deposit { .. })),
            withdrawals: one(matches!(mv, Move::Withdraw { .. })),
            transfers: one(matches!(mv, Move::Transfer { .. })),
            transfer_sum: if matches!(mv, Move::Transfer { .. }) {
                mv.amount().get()
            } else {
                0
            },
            retries: i64::from(redos.retries),
            deadlocks: i64::from(redos.deadlocks),
        }
    }

    /// No entry: another write of the move carries it.
    pub(super) fn none() -> Self {
        Self::default()
    }

    /// `$1` to `$7` of a statement with an [`entry!`].
    pub(super) fn params<'a>(
        &'a self,
        database: &'a BankDatabase,
    ) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &database.bank,
            &self.deposits,
            &self.withdrawals,
            &self.transfers,
            &self.transfer_sum,
            &self.retries,
            &self.deadlocks,
        ]
    }
}

/// The redos one request needed so far: sections rolled back after a conflict, and how many of
/// those conflicts were deadlocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Redos {
    pub(super) retries: u32,
    pub(super) deadlocks: u32,
}

/// Counts of a request that wrote nothing: refused, or redone and given up.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) refused: i64,
    pub(super) redos: Redos,
    pub(super) exhausted: bool,
}

impl Tally {
    /// One refusal.
    pub(super) fn refused() -> Self {
        Self {
            refused: 1,
            ..Self::default()
        }
    }
}

/// Adds `tally` to a shard.
pub(super) async fn record(
    client: &Object,
    database: &BankDatabase,
    tally: Tally,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "INSERT INTO racebank.bank_ledger AS l (bank, shard, refused, retries, deadlocks,
                 retries_exhausted)
             VALUES ($1, $2::int2, $3::int8, $4::int8, $5::int8, $6::int8)
             ON CONFLICT (bank, shard) DO UPDATE SET
                 refused = l.refused + excluded.refused,
                 retries = l.retries + excluded.retries,
                 deadlocks = l.deadlocks + excluded.deadlocks,
                 retries_exhausted = l.retries_exhausted + excluded.retries_exhausted",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &database.bank,
                &random_shard(),
                &tally.refused,
                &i64::from(tally.redos.retries),
                &i64::from(tally.redos.deadlocks),
                &i64::from(tally.exhausted),
            ],
        )
        .await
}

/// Every account's row, and the bank-wide counts: the sums of the counters over the bank's
/// accounts' rows (a window over the rows read) plus the sums of the bank's shards, in the bank's
/// order, in one statement. Sums are read as text: numeric is wider than any integer
/// tokio-postgres decodes.
const READ: &str = "
    SELECT a.balance, a.opening, a.credits::text, a.debits::text, a.lost_updates,
        a.created::text, a.destroyed::text,
        (l.deposits + coalesce(sum(a.deposits) OVER (), 0))::int8,
        (l.withdrawals + coalesce(sum(a.withdrawals) OVER (), 0))::int8,
        (l.transfers + coalesce(sum(a.transfers) OVER (), 0))::int8,
        (l.transfer_sum + coalesce(sum(a.transfer_sum) OVER (), 0))::text,
        l.refused,
        (l.deadlocks + coalesce(sum(a.deadlocks) OVER (), 0))::int8,
        (l.retries + coalesce(sum(a.retries) OVER (), 0))::int8,
        l.retries_exhausted
    FROM unnest($2::text[]) WITH ORDINALITY AS s(id, n)
    LEFT JOIN racebank.bank_accounts a ON a.bank = $1 AND a.id = s.id
    CROSS JOIN (
        SELECT coalesce(sum(deposits), 0) AS deposits,
            coalesce(sum(withdrawals), 0) AS withdrawals,
            coalesce(sum(transfers), 0) AS transfers,
            coalesce(sum(transfer_sum), 0) AS transfer_sum,
            coalesce(sum(refused), 0)::int8 AS refused,
            coalesce(sum(deadlocks), 0) AS deadlocks,
            coalesce(sum(retries), 0) AS retries,
            coalesce(sum(retries_exhausted), 0)::int8 AS retries_exhausted
        FROM racebank.bank_ledger WHERE bank = $1
    ) l
    ORDER BY s.n";

/// The bank's ledger and every balance.
pub(super) async fn read(
    client: &Object,
    database: &BankDatabase,
) -> Result<(BankLedger, Vec<i64>), AccountError> {
    let statement = client
        .prepare_cached(READ)
        .await
        .map_err(|e| failure::before_write("preparing the bank's ledger read", &e))?;
    let rows = client
        .query(&statement, &[&database.bank, &database.ids])
        .await
        .map_err(|e| failure::before_write("reading the bank's ledger", &e))?;
    let mut accounts = Vec::with_capacity(rows.len());
    let mut balances = Vec::with_capacity(rows.len());
    let mut counts = None;
    for (position, row) in rows.iter().enumerate() {
        let balance: Option<i64> = row
            .try_get(0)
            .map_err(|e| failure::undecodable("the bank's ledger", &e.to_string()))?;
        balances.push(balance.ok_or_else(|| missing(database, position))?);
        let (account, bank) =
            from_row(row).map_err(|detail| failure::undecodable("the bank's ledger", &detail))?;
        accounts.push(account);
        // Every row carries the same bank-wide sums.
        counts.get_or_insert(bank);
    }
    let ledger = BankLedger {
        accounts,
        ..counts.unwrap_or_default()
    };
    Ok((ledger, balances))
}

/// One account's ledger and the bank-wide counts from a row of [`READ`].
fn from_row(row: &tokio_postgres::Row) -> Result<(AccountLedger, BankLedger), String> {
    let (int, count, sum) = (
        |index| crate::store::postgres::ledger::column_int(row, index),
        |index| crate::store::postgres::ledger::column_count(row, index),
        |index| crate::store::postgres::ledger::column_sum(row, index),
    );
    let account = AccountLedger {
        opening: int(1)?,
        credits: sum(2)?,
        debits: sum(3)?,
        lost_updates: count(4)?,
        created: sum(5)?,
        destroyed: sum(6)?,
    };
    let bank = BankLedger {
        accounts: Vec::new(),
        deposits: count(7)?,
        withdrawals: count(8)?,
        transfers: count(9)?,
        transfer_sum: sum(10)?,
        refused: count(11)?,
        deadlocks: count(12)?,
        retries: count(13)?,
        retries_exhausted: count(14)?,
    };
    Ok((account, bank))
}

/// The account at `position` has no row: someone deleted it under a running server.
pub(super) fn missing(database: &BankDatabase, position: usize) -> AccountError {
    failure::missing_account(&format!("{}/{}", database.bank, database.id(position)))
}

/// Opens every account again with `balances` and zeroes the ledger, in one transaction.
///
/// Every guard a write can hold excludes the reset too: the accounts' advisory locks
/// (`advisory`), taken by id as writers take them, and the row locks the upsert waits for
/// (`for-update`, the unguarded writes, `atomic`); `optimistic` and the isolation levels see the
/// versions move and redo.
pub(super) async fn reset(
    client: &mut Object,
    database: &BankDatabase,
    balances: &[i64],
) -> Result<(), AccountError> {
    let mut by_id: Vec<(&String, i64)> =
        database.ids.iter().zip(balances.iter().copied()).collect();
    by_id.sort_unstable();
    let (ids, balances): (Vec<&String>, Vec<i64>) = by_id.into_iter().unzip();
    let transaction = client
        .transaction()
        .await
        .map_err(|e| failure::before_write("starting the reset", &e))?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(29283, hashtext($1::text || '/' || s.id))
             FROM unnest($2::text[]) WITH ORDINALITY AS s(id, n) ORDER BY s.n",
            &[&database.bank, &ids],
        )
        .await
        .map_err(|e| failure::before_write("taking the accounts' advisory locks", &e))?;
    transaction
        .execute(
            "INSERT INTO racebank.bank_accounts AS a (bank, id, balance, opening)
             SELECT $1, s.id, s.balance, s.balance
             FROM unnest($2::text[], $3::int8[]) AS s(id, balance)
             ON CONFLICT (bank, id) DO UPDATE SET balance = excluded.balance,
                 opening = excluded.opening, replaced = a.balance, version = a.version + 1,
                 credits = 0, debits = 0, lost_updates = 0, created = 0, destroyed = 0,
                 deposits = 0, withdrawals = 0, transfers = 0, transfer_sum = 0, retries = 0,
                 deadlocks = 0",
            &[&database.bank, &ids, &balances],
        )
        .await
        .map_err(|e| failure::before_write("resetting the balances", &e))?;
    transaction
        .execute(
            "DELETE FROM racebank.bank_ledger WHERE bank = $1",
            &[&database.bank],
        )
        .await
        .map_err(|e| failure::before_write("clearing the bank's ledger", &e))?;
    transaction
        .commit()
        .await
        .map_err(|e| failure::during_write("committing the reset", &e))
}
