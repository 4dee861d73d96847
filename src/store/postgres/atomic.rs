//! Atomic: do the work first, then one statement,
//! `UPDATE ... SET balance = balance + $deposit - $withdrawal WHERE id = $1 AND <the checks> RETURNING`.
//!
//! Nothing computes from a stale read, because the read, the checks and the write are one
//! statement on the locked row: PostgreSQL re-evaluates the WHERE on the newest version of the row
//! after waiting for any writer ahead of it. The funds check (`balance >= $withdrawal`) and the
//! overflow check (`balance <= i64::MAX - $deposit`, so `balance + $deposit` can never overflow)
//! are in the WHERE; the ledger entry is in the same statement.
//!
//! When the UPDATE matches no row, the same statement's snapshot says what the balance was, and
//! the request answers 409 (or 422 for an overflow) with it, exactly as the memory store does. The
//! snapshot can be a moment older than the row the WHERE judged; if it would have allowed the
//! change, the refusal cannot be explained with it, so the statement runs again (rare, bounded by
//! `--max-retries`).

use super::failure;
use super::ledger::{write_and_record, Entry};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// The change in place and its ledger entry; answers the balance written (NULL when refused) and
/// the balance in the statement's snapshot. Its own parameters: none (`$3`, `$4` are the change).
const APPLY: &str = write_and_record!(
    "UPDATE racebank.accounts
     SET balance = balance + $3 - $4, replaced = balance, version = version + 1
     WHERE id = $1 AND balance >= $4 AND balance <= 9223372036854775807 - $3
     RETURNING balance, replaced, replaced AS read",
    "SELECT (SELECT balance FROM written),
            (SELECT balance FROM racebank.accounts WHERE id = $1)"
);

pub(super) async fn apply(
    database: &Database,
    work: &Work,
    op: Op,
    max_retries: u32,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    work.run().await?;
    let client = database.client().await?;
    let statement = client
        .prepare_cached(APPLY)
        .await
        .map_err(|e| failure::before_write("preparing the update", &e))?;
    let mut retries: u32 = 0;
    loop {
        failure::still_open(&client, "updating the balance")?;
        let entry = Entry::new(op, claim);
        let row = client
            .query_one(
                &statement,
                &[
                    &database.account,
                    &entry.shard,
                    &entry.deposit,
                    &entry.withdrawal,
                    &i64::from(retries),
                    &entry.key,
                    &entry.ttl_millis,
                ],
            )
            .await
            .map_err(|e| failure::during_write("updating the balance", &e))?;
        let written: Option<i64> = row
            .try_get(0)
            .map_err(|e| failure::during_write("updating the balance", &e))?;
        if let Some(balance) = written {
            return Ok(balance);
        }
        let seen: Option<i64> = row
            .try_get(1)
            .map_err(|e| failure::before_write("reading the balance", &e))?;
        let seen = seen.ok_or_else(|| failure::missing_account(&database.account))?;
        if let Err(refusal) = op.apply_to(seen) {
            if retries > 0 {
                database.record(0, i64::from(retries), false).await;
            }
            return Err(refusal.into());
        }
        if retries == max_retries {
            database.record(0, i64::from(retries), true).await;
            return Err(AccountError::Contention { retries });
        }
        retries += 1;
    }
}
