//! Optimistic: read the balances and their versions, work, then in one short transaction, by
//! account id, `UPDATE ... WHERE version = $v` each account written and check each account only
//! read (the household) with `SELECT ... WHERE version = $v FOR SHARE`; `COMMIT`. If any version
//! moved, another write landed in between: roll back, read again and redo the work, up to
//! `--max-retries` times, then answer 503 having changed nothing.
//!
//! No lock is held across the work. Checking the accounts only read is what stops write skew: a
//! withdrawal from one member of a household that checked only its own row would pass beside one
//! from the other member. The check locks the row it read (`FOR SHARE`) until the COMMIT, so a
//! concurrent write to it either landed before (the version moved: redo) or waits until after.
//! Taking the locks by account id means two moves never wait for each other in a cycle.

use super::ledger::{Count, Redos};
use super::section::{self, balances, before, during, redone, Attempt};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;
use crate::store::postgres::failure;

/// Whether an account only read still has the version read, its row locked against writes until
/// the transaction ends: `$1` bank, `$2` id, `$3` version.
const CHECK: &str = "SELECT FROM racebank.bank_accounts
    WHERE bank = $1 AND id = $2 AND version = $3 FOR SHARE";

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    let mut by_id = mv.reads(spec);
    spec.sort_by_id(&mut by_id);
    let mut client = database.client().await?;
    redone!(database, max_retries, |redos| attempt(
        &mut client,
        database,
        spec,
        work,
        mv,
        &by_id,
        redos
    ))
}

/// Read, work, and the checked writes; a moved version is a conflict.
async fn attempt(
    client: &mut deadpool_postgres::Object,
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    by_id: &[usize],
    redos: Redos,
) -> Result<Vec<i64>, Attempt> {
    let seen = section::read(&*client, database, &mv.reads(spec)).await?;
    let written = mv
        .settle(spec, &balances(&seen))
        .map_err(|refusal| Attempt::Failed(refusal.into()))?;
    work.run().await.map_err(Attempt::Failed)?;
    failure::still_open(client, "writing the balances").map_err(Attempt::Failed)?;
    let transaction = client
        .transaction()
        .await
        .map_err(before("starting the transaction"))?;
    let check = transaction
        .prepare_cached(CHECK)
        .await
        .map_err(before("preparing the version check"))?;
    let last_write = by_id
        .iter()
        .rposition(|p| written.iter().any(|(w, _)| w == p));
    let mut answers = vec![0; written.len()];
    for (n, &position) in by_id.iter().enumerate() {
        let read = seen
            .iter()
            .find(|s| s.position == position)
            .expect("every account locked was read");
        let Some(slot) = written.iter().position(|(w, _)| *w == position) else {
            let row = transaction
                .query_opt(
                    &check,
                    &[&database.bank, &database.id(position), &read.version],
                )
                .await
                .map_err(before("checking a version"))?;
            row.ok_or(Attempt::Conflict { deadlock: false })?;
            continue;
        };
        let count = if Some(n) == last_write {
            Count::of(mv, redos)
        } else {
            Count::none()
        };
        let balance = written[slot].1;
        answers[slot] = section::write(
            &transaction,
            database,
            mv,
            position,
            balance,
            read.balance,
            Some(read.version),
            count,
        )
        .await
        .map_err(before("writing the balances"))?
        .ok_or(Attempt::Conflict { deadlock: false })?;
    }
    transaction.commit().await.map_err(during("committing"))?;
    Ok(answers)
}
