//! Repeatable read and serializable: the unguarded section, unchanged, in one transaction of that
//! isolation level; when PostgreSQL refuses it (40001 serialization failure, 40P01 deadlock), roll
//! back and redo it all, work included, up to `--max-retries` times.
//!
//! REPEATABLE READ is snapshot isolation: a write to a row another transaction changed since the
//! snapshot fails with 40001, so no update is lost. But two withdrawals from two accounts of one
//! household, each reading both and writing its own, write different rows: nothing conflicts,
//! both commit, and the household ends below zero (write skew, G2-item, as Hermitage shows).
//! SERIALIZABLE tracks what each read and refuses one of the two at the latest at its COMMIT.

use tokio_postgres::IsolationLevel;

use super::ledger::Redos;
use super::section::{self, balances, before, during, redone, Attempt};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
    level: IsolationLevel,
    max_retries: u32,
) -> Result<Vec<i64>, AccountError> {
    let mut client = database.client().await?;
    redone!(database, max_retries, |redos| attempt(
        &mut client,
        database,
        spec,
        work,
        mv,
        level,
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
    level: IsolationLevel,
    redos: Redos,
) -> Result<Vec<i64>, Attempt> {
    let transaction = client
        .build_transaction()
        .isolation_level(level)
        .start()
        .await
        .map_err(before("starting the transaction"))?;
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
