//! Atomic: do the work first, then one statement,
//! `UPDATE ... SET balance = balance + $deposit - $withdrawal WHERE id = $1 AND <the checks> RETURNING`.
//!
//! Nothing computes from a stale read, because the read, the checks and the write are one
//! statement on the locked row: PostgreSQL re-evaluates the WHERE on the newest version of the row
//! after waiting for any writer ahead of it. The funds check (`balance >= $withdrawal`) and the
//! overflow check (`balance <= i64::MAX - $deposit`, so `balance + $deposit` can never overflow)
//! are in the WHERE; the ledger entry is in the same UPDATE.
//!
//! The entry is added to counters in the account row (migration 0005), not upserted into a ledger
//! shard beside it: the row lock is held from the UPDATE to the end of the commit, and every write
//! of the account queues on it, so whatever the statement does after the UPDATE is paid once per
//! write, in series. The shard upsert (an index probe, a tuple lock, a second tuple and its WAL)
//! was most of that; in the row it is five more columns of the one tuple the write makes anyway.
//! The snapshot read that explains a refusal runs only when the UPDATE matched nothing.
//!
//! When the UPDATE matches no row, the same statement's snapshot says what the balance was, and
//! the request answers 409 (or 422 for an overflow) with it, exactly as the memory store does. The
//! snapshot can be a moment older than the row the WHERE judged; if it would have allowed the
//! change, the refusal cannot be explained with it, so the statement runs again (rare, bounded by
//! `--max-retries`).

use super::failure;
use super::ledger::{remember_answer, Entry};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// The change in place with its ledger entry in the same row, and the answer kept for a key; answers
/// the balance written (NULL when refused) and, only when refused, the balance in the statement's
/// snapshot. Parameters: `$1` account, `$2` the deposit or 0, `$3` the withdrawal or 0, `$4` the
/// redos this request needed, `$5` the idempotency key or NULL, `$6` how long its answer is kept in
/// milliseconds.
const APPLY: &str = concat!(
    "WITH written AS (
        UPDATE racebank.accounts
        SET balance = balance + $2::int8 - $3::int8, replaced = balance, version = version + 1,
            deposit_count = deposit_count + ($2::int8 > 0)::int,
            deposit_sum = deposit_sum + $2::int8,
            withdrawal_count = withdrawal_count + ($3::int8 > 0)::int,
            withdrawal_sum = withdrawal_sum + $3::int8,
            retries = retries + $4::int8
        WHERE id = $1 AND balance >= $3::int8 AND balance <= 9223372036854775807 - $2::int8
        RETURNING balance
     ), ",
    remember_answer!(account: "$1", deposit: "$2", withdrawal: "$3", key: "$5", ttl: "$6"),
    "
     SELECT w.balance,
            CASE WHEN w.balance IS NULL
                THEN (SELECT balance FROM racebank.accounts WHERE id = $1) END
     FROM (SELECT (SELECT balance FROM written) AS balance) w"
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
