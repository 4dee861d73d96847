//! Optimistic: read the balance and its version, do the work, then
//! `UPDATE ... WHERE version = $v`. No lock is held across the work; if the version moved, another
//! write landed in between, the UPDATE matches no row, and the request reads again and redoes the
//! work, up to `--max-retries` times before it answers 503 having changed nothing.
//!
//! The version rather than the balance is compared, as a real table would: a row's update usually
//! depends on more than one column, and a balance that went +5 then -5 has still moved.
//! Each statement runs on its own (READ COMMITTED); the version check is what makes it safe.

use super::failure;
use super::ledger::{write_and_record, Entry};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// The balance and its version: `$1` account.
const READ: &str = "SELECT balance, version FROM racebank.accounts WHERE id = $1";

/// The compare-and-set and its ledger entry: `$8` the new balance, `$9` the version read, `$10` the
/// balance read. `replaced` always equals `read` here, and the ledger checks it rather than assume it.
const WRITE: &str = write_and_record!(
    "UPDATE racebank.accounts SET balance = $8, replaced = balance, version = version + 1
     WHERE id = $1 AND version = $9
     RETURNING balance, replaced, $10::int8 AS read"
);

pub(super) async fn apply(
    database: &Database,
    work: &Work,
    op: Op,
    max_retries: u32,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let client = database.client().await?;
    let (read, write) = tokio::try_join!(client.prepare_cached(READ), client.prepare_cached(WRITE))
        .map_err(|e| failure::before_write("preparing the statements", &e))?;
    let mut retries: u32 = 0;
    let outcome = loop {
        let row = match client.query_opt(&read, &[&database.account]).await {
            Ok(Some(row)) => row,
            Ok(None) => break Err(failure::missing_account(&database.account)),
            Err(e) => break Err(failure::before_write("reading the balance", &e)),
        };
        let (balance, version): (i64, i64) = match (row.try_get(0), row.try_get(1)) {
            (Ok(balance), Ok(version)) => (balance, version),
            (Err(e), _) | (_, Err(e)) => {
                break Err(failure::before_write("reading the balance", &e))
            }
        };
        let new_balance = match op.apply_to(balance) {
            Ok(new_balance) => new_balance,
            Err(refusal) => break Err(refusal.into()),
        };
        if let Err(stopped) = work.run().await {
            break Err(stopped);
        }
        if let Err(closed) = failure::still_open(&client, "writing the balance") {
            break Err(closed);
        }
        let entry = Entry::new(op, claim);
        let written = client
            .query_opt(
                &write,
                &[
                    &database.account,
                    &entry.shard,
                    &entry.deposit,
                    &entry.withdrawal,
                    &i64::from(retries),
                    &entry.key,
                    &entry.ttl_millis,
                    &new_balance,
                    &version,
                    &balance,
                ],
            )
            .await;
        match written {
            Ok(Some(row)) => {
                // The redos were recorded with the write, in the same statement.
                return row
                    .try_get(0)
                    .map_err(|e| failure::during_write("writing the balance", &e));
            }
            Ok(None) if retries == max_retries => break Err(AccountError::Contention { retries }),
            Ok(None) => retries += 1,
            Err(e) => break Err(failure::during_write("writing the balance", &e)),
        }
    };
    let gave_up = matches!(outcome, Err(AccountError::Contention { .. }));
    if retries > 0 || gave_up {
        database.record(0, i64::from(retries), gave_up).await;
    }
    outcome
}
