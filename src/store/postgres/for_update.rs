//! For update: `BEGIN; SELECT ... FOR UPDATE`; work; `UPDATE`; `COMMIT`.
//!
//! The row lock is taken at the read and held to the COMMIT, work included, so a second request
//! (in this replica or any other) waits at its own `SELECT ... FOR UPDATE` until the first has
//! written, then reads the new balance. Safe across replicas; the price is that the account does
//! one section at a time, about 1 / (work + a commit) per second.
//!
//! A request dropped or stopped before the COMMIT drops the transaction, which rolls back: nothing
//! is written and the lock is released.

use deadpool_postgres::Transaction;

use super::failure;
use super::unguarded::{read, write};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// The balance, with the row locked until the transaction ends: `$1` account.
const READ_FOR_UPDATE: &str = "SELECT balance FROM racebank.accounts WHERE id = $1 FOR UPDATE";

pub(super) async fn apply(
    database: &Database,
    work: &Work,
    op: Op,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let mut client = database.client().await?;
    let transaction = client
        .transaction()
        .await
        .map_err(|e| failure::before_write("starting the transaction", &e))?;
    section(transaction, database, work, op, claim, READ_FOR_UPDATE).await
}

/// Read with `read_sql`, work, write, COMMIT, all in `transaction`: this mode's section, and
/// `advisory`'s once its lock is taken. Nothing is written before the COMMIT.
pub(super) async fn section(
    transaction: Transaction<'_>,
    database: &Database,
    work: &Work,
    op: Op,
    claim: Option<&Claim<'_>>,
    read_sql: &str,
) -> Result<i64, AccountError> {
    let read = read(&transaction, database, read_sql).await?;
    let new_balance = op.apply_to(read)?;
    work.run().await?;
    let written = write(&transaction, database, op, claim, read, new_balance, 0)
        .await
        .map_err(|e| failure::before_write("writing the balance", &e))?;
    transaction
        .commit()
        .await
        .map_err(|e| failure::during_write("committing", &e))?;
    Ok(written)
}
