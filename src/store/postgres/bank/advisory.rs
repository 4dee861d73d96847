//! Advisory: `BEGIN`; `pg_advisory_xact_lock` on each account the move reads, by account id; read;
//! work; write; `COMMIT`.
//!
//! The locks are the application's own: PostgreSQL knows nothing of what they protect, only that
//! two transactions asking for the same key take turns, in any replica. Taken in id order, no two
//! moves can wait for each other in a cycle. The rows themselves are read and written as in
//! `unguarded`; the COMMIT or the rollback releases the locks, so a dropped request leaves none.
//!
//! The key is the pair (29283, `hashtext(bank || '/' || id)`): the two-number key space, apart
//! from the migration lock and from the single account's (29282, ...). Two ids that hash alike
//! merely take turns (and, taken in two moves in crossed order, are a deadlock PostgreSQL breaks:
//! redone like any conflict).

use super::ledger::Redos;
use super::section::{self, balances, before, during, redone, Attempt};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// Waits for an account's advisory lock, held until the transaction ends: `$1` bank, `$2` id.
const LOCK: &str = "SELECT pg_advisory_xact_lock(29283, hashtext($1::text || '/' || $2::text))";

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    let mut locks = mv.reads(spec);
    spec.sort_by_id(&mut locks);
    let mut client = database.client().await?;
    redone!(database, max_retries, |redos| attempt(
        &mut client,
        database,
        spec,
        work,
        mv,
        &locks,
        redos
    ))
}

/// The section, once, in one transaction; dropping it on any early return rolls it back.
async fn attempt(
    client: &mut deadpool_postgres::Object,
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    locks: &[usize],
    redos: Redos,
) -> Result<Vec<i64>, Attempt> {
    let transaction = client
        .transaction()
        .await
        .map_err(before("starting the transaction"))?;
    let lock = transaction
        .prepare_cached(LOCK)
        .await
        .map_err(before("preparing the lock"))?;
    for &position in locks {
        transaction
            .execute(&lock, &[&database.bank, &database.id(position)])
            .await
            .map_err(before("taking an advisory lock"))?;
    }
    let seen = section::read(&transaction, database, &mv.reads(spec)).await?;
    let written = mv
        .settle(spec, &balances(&seen))
        .map_err(|refusal| Attempt::Failed(refusal.into()))?;
    work.run().await.map_err(Attempt::Failed)?;
    let balances =
        section::write_all(&transaction, database, mv, &seen, &written, redos, false).await?;
    transaction.commit().await.map_err(during("committing"))?;
    Ok(balances)
}
