//! The statements behind idempotency keys in PostgreSQL, besides the insert that rides with every
//! keyed write ([`super::ledger`]'s `write_and_record!`).

use tokio_postgres::Row;

use crate::domain::idempotency::Remembered;

/// The answer kept for a key: `$1` account, `$2` key. An expired row of the key is deleted in the
/// same statement, so the key's next write finds it free; the statement's snapshot still shows the
/// row, hence the expiry test in the answer too.
pub(super) const LOOKUP: &str = "
    WITH expired AS (
        DELETE FROM racebank.idempotency
        WHERE account = $1 AND key = $2 AND expires_at <= now()
    )
    SELECT kind, amount, status, balance FROM racebank.idempotency
    WHERE account = $1 AND key = $2 AND expires_at > now()";

/// Keeps a refusal's answer unless the key has one: `$1` account, `$2` key, `$3` kind, `$4` amount,
/// `$5` status, `$6` balance, `$7` milliseconds to keep it. One row inserted, or none.
pub(super) const REMEMBER: &str = "
    INSERT INTO racebank.idempotency (account, key, kind, amount, status, balance, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, now() + $7::int8 * interval '1 millisecond')
    ON CONFLICT (account, key) DO NOTHING";

/// How many expired keys one purge deletes at most: a short statement, so it holds few row locks
/// and never stalls the writes beside it.
pub(super) const PURGE_BATCH: u64 = 1000;

/// Deletes up to [`PURGE_BATCH`] of the account's expired keys: `$1` account. Rows another replica
/// is purging at the same moment are skipped, not waited for.
pub(super) const PURGE: &str = "
    DELETE FROM racebank.idempotency WHERE ctid IN (
        SELECT ctid FROM racebank.idempotency
        WHERE account = $1 AND expires_at <= now()
        LIMIT 1000 FOR UPDATE SKIP LOCKED)";

/// The answer from a row of [`LOOKUP`].
pub(super) fn from_row(row: &Row) -> Result<Remembered, String> {
    let kind: &str = row.try_get(0).map_err(|e| e.to_string())?;
    let amount: i64 = row.try_get(1).map_err(|e| e.to_string())?;
    let status: i16 = row.try_get(2).map_err(|e| e.to_string())?;
    let balance: i64 = row.try_get(3).map_err(|e| e.to_string())?;
    Remembered::from_parts(kind, amount, status.into(), balance)
        .ok_or_else(|| format!("{kind} of {amount} answered {status}"))
}
