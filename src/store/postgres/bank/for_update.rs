//! For update: `BEGIN`; `SELECT ... FOR UPDATE` the first account of the lock order; work; lock
//! the rest, one at a time; decide on the balances the locks read; write; `COMMIT`. The way a
//! handler loads one account, checks it, then loads the other.
//!
//! Every account the move reads is locked to the COMMIT, the household's too, so neither a lost
//! update nor write skew can pass, in any replica. The price is the order: in `--lock-order
//! request` (the debited account first) two transfers in opposite directions each hold the lock
//! the other waits for. PostgreSQL finds the cycle after `deadlock_timeout` (1 s by default) and
//! aborts one with 40P01; it is redone (counted in `deadlocks` and `retries`), so both end applied,
//! a second late. In `--lock-order id` every move locks in the same order and none can deadlock.

use super::ledger::Redos;
use super::section::{self, before, during, redone, Attempt, Seen};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, LockOrder, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// The balance and version, with the row locked until the transaction ends: `$1` bank, `$2` id.
const READ_FOR_UPDATE: &str = "SELECT balance, version FROM racebank.bank_accounts
    WHERE bank = $1 AND id = $2 FOR UPDATE";

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    order: LockOrder,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    let mut locks = mv.reads(spec);
    if order == LockOrder::Id {
        spec.sort_by_id(&mut locks);
    }
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
    let statement = transaction
        .prepare_cached(READ_FOR_UPDATE)
        .await
        .map_err(before("preparing the locking read"))?;
    let mut seen = Vec::with_capacity(locks.len());
    for (n, &position) in locks.iter().enumerate() {
        if n == 1 {
            work.run().await.map_err(Attempt::Failed)?;
        }
        let row = transaction
            .query_opt(&statement, &[&database.bank, &database.id(position)])
            .await
            .map_err(before("locking an account"))?
            .ok_or_else(|| Attempt::Failed(super::ledger::missing(database, position)))?;
        let balance = row.try_get(0).map_err(before("reading a balance"))?;
        let version = row.try_get(1).map_err(before("reading a balance"))?;
        seen.push(Seen {
            position,
            balance,
            version,
        });
    }
    if locks.len() == 1 {
        work.run().await.map_err(Attempt::Failed)?;
    }
    let written = mv
        .settle(spec, &section::balances(&seen))
        .map_err(|refusal| Attempt::Failed(refusal.into()))?;
    let balances =
        section::write_all(&transaction, database, mv, &seen, &written, redos, false).await?;
    transaction.commit().await.map_err(during("committing"))?;
    Ok(balances)
}
