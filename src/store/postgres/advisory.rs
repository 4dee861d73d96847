//! Advisory: `pg_advisory_xact_lock(account)` taken first, then read, work, write, in one
//! transaction.
//!
//! The lock is the application's own: PostgreSQL knows nothing of what it protects, only that two
//! transactions asking for the same key take turns, in any replica. The balance row itself is read
//! and written as in `unguarded`; everything that writes the account must take the same lock, or it
//! is not protected (a replica in `unguarded` mode still races with this one). The lock is released
//! by the COMMIT or the rollback, so a dropped request cannot leave it held.
//!
//! The key is the pair (a constant for racebank accounts, `hashtext(account id)`): the two-number
//! key space, apart from the migration lock. Two ids that hash alike merely take turns.

use super::unguarded::READ;
use super::Database;
use super::{failure, for_update};
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

/// Waits for the account's advisory lock, held until the transaction ends: `$1` account.
/// The first number is "rb" (racebank), so other applications' advisory locks do not collide.
pub(super) const LOCK: &str = "SELECT pg_advisory_xact_lock(29282, hashtext($1))";

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
    let lock = transaction
        .prepare_cached(LOCK)
        .await
        .map_err(|e| failure::before_write("preparing the lock", &e))?;
    transaction
        .execute(&lock, &[&database.account])
        .await
        .map_err(|e| failure::before_write("taking the advisory lock", &e))?;
    for_update::section(transaction, database, work, op, claim, READ).await
}
