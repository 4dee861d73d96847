//! Unguarded: `SELECT` the balance, do the work, `UPDATE ... SET balance = $computed`, each
//! statement on its own in READ COMMITTED. The race, exactly as it ships in real handlers.
//!
//! Two requests that read the same balance both compute from it; the second `UPDATE` waits for the
//! first's row lock, then overwrites its result. The write sets `replaced = balance` beside the new
//! balance, so it learns what it erased; its ledger entry is in the same statement.
//! `mutex` and `semaphore:N` run this same section inside an in-process guard, and
//! `for-update`, `advisory`, `repeatable-read` and `serializable` run it inside a transaction.

use deadpool_postgres::GenericClient;

use super::failure;
use super::ledger::{write_and_record, Entry};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// The balance: `$1` account.
pub(super) const READ: &str = "SELECT balance FROM racebank.accounts WHERE id = $1";

/// The blind write and its ledger entry: `$8` the new balance, `$9` the balance it was computed from.
pub(super) const WRITE: &str = write_and_record!(
    "UPDATE racebank.accounts SET balance = $8, replaced = balance, version = version + 1
     WHERE id = $1
     RETURNING balance, replaced, $9::int8 AS read"
);

pub(super) async fn apply(
    database: &Database,
    work: &Work,
    op: Op,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let client = database.client().await?;
    let read = read(&client, database, READ).await?;
    let new_balance = op.apply_to(read)?;
    work.run().await?;
    failure::still_open(&client, "writing the balance")?;
    // Outside a transaction the UPDATE commits on its own: once sent, it may have been applied.
    write(&client, database, op, claim, read, new_balance, 0)
        .await
        .map_err(|e| failure::during_write("writing the balance", &e))
}

/// Reads the balance with `sql` (`READ`, or a locking variant of it).
pub(super) async fn read(
    client: &impl GenericClient,
    database: &Database,
    sql: &str,
) -> Result<i64, AccountError> {
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(|e| failure::before_write("preparing the read", &e))?;
    let row = client
        .query_opt(&statement, &[&database.account])
        .await
        .map_err(|e| failure::before_write("reading the balance", &e))?
        .ok_or_else(|| failure::missing_account(&database.account))?;
    row.try_get(0)
        .map_err(|e| failure::before_write("reading the balance", &e))
}

/// Writes `new_balance`, computed from `read`, with its ledger entry (and `retries` redos) in the
/// same statement. The caller decides what an error means: inside a transaction nothing is
/// applied before COMMIT.
pub(super) async fn write(
    client: &impl GenericClient,
    database: &Database,
    op: Op,
    claim: Option<&Claim<'_>>,
    read: i64,
    new_balance: i64,
    retries: i64,
) -> Result<i64, tokio_postgres::Error> {
    let entry = Entry::new(op, claim);
    let statement = client.prepare_cached(WRITE).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &database.account,
                &entry.shard,
                &entry.deposit,
                &entry.withdrawal,
                &retries,
                &entry.key,
                &entry.ttl_millis,
                &new_balance,
                &read,
            ],
        )
        .await?;
    row.try_get(0)
}
