//! Repeatable read and serializable: the unguarded section, unchanged, inside a transaction of that
//! isolation level; when PostgreSQL refuses it (40001 serialization failure, 40P01 deadlock), roll
//! back and redo it all, work included, up to `--max-retries` times, then answer 503.
//!
//! No lock is held across the work. In REPEATABLE READ the transaction reads from its snapshot, and
//! an `UPDATE` of a row that another transaction changed since the snapshot fails with 40001: the
//! lost update is refused at the write. SERIALIZABLE adds predicate tracking on top, and may also
//! refuse at the COMMIT. Either way the retry loop is the application's job: this is it.
//!
//! A refusal after the COMMIT was sent is still a refusal (the server answered 40001: nothing was
//! committed), so only a connection lost during the COMMIT leaves the outcome unknown.

use tokio_postgres::IsolationLevel;

use super::failure;
use super::unguarded::{self, READ};
use super::Database;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

pub(super) async fn apply(
    database: &Database,
    work: &Work,
    op: Op,
    level: IsolationLevel,
    max_retries: u32,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let mut client = database.client().await?;
    let mut retries: u32 = 0;
    let outcome = loop {
        match attempt(&mut client, database, work, op, claim, level, retries).await {
            Err(Attempt::Conflict) if retries == max_retries => {
                break Err(AccountError::Contention { retries })
            }
            Err(Attempt::Conflict) => retries += 1,
            Err(Attempt::Failed(error)) => break Err(error),
            Ok(balance) => return Ok(balance),
        }
    };
    let gave_up = matches!(outcome, Err(AccountError::Contention { .. }));
    if retries > 0 || gave_up {
        database.record(0, i64::from(retries), gave_up).await;
    }
    outcome
}

/// Why one attempt did not commit.
enum Attempt {
    /// PostgreSQL refused it to keep the isolation level's promise: redo.
    Conflict,
    /// Anything else, as the client will see it.
    Failed(AccountError),
}

/// The section, once, in one transaction. Dropping the transaction on any early return rolls it back.
async fn attempt(
    client: &mut deadpool_postgres::Object,
    database: &Database,
    work: &Work,
    op: Op,
    claim: Option<&Claim<'_>>,
    level: IsolationLevel,
    retries: u32,
) -> Result<i64, Attempt> {
    let conflict_or = |doing: &'static str, during_write: bool| {
        move |error: tokio_postgres::Error| {
            if failure::is_conflict(&error) {
                Attempt::Conflict
            } else if during_write {
                Attempt::Failed(failure::during_write(doing, &error))
            } else {
                Attempt::Failed(failure::before_write(doing, &error))
            }
        }
    };
    let transaction = client
        .build_transaction()
        .isolation_level(level)
        .start()
        .await
        .map_err(conflict_or("starting the transaction", false))?;
    let statement = transaction
        .prepare_cached(READ)
        .await
        .map_err(conflict_or("preparing the read", false))?;
    let row = transaction
        .query_opt(&statement, &[&database.account])
        .await
        .map_err(conflict_or("reading the balance", false))?
        .ok_or_else(|| Attempt::Failed(failure::missing_account(&database.account)))?;
    let read: i64 = row
        .try_get(0)
        .map_err(conflict_or("reading the balance", false))?;
    let new_balance = op
        .apply_to(read)
        .map_err(|refusal| Attempt::Failed(refusal.into()))?;
    work.run().await.map_err(Attempt::Failed)?;
    // The redos this request needed ride along with the write that finally commits.
    let written = unguarded::write(
        &transaction,
        database,
        op,
        claim,
        read,
        new_balance,
        i64::from(retries),
    )
    .await
    .map_err(conflict_or("writing the balance", false))?;
    transaction
        .commit()
        .await
        .map_err(conflict_or("committing", true))?;
    Ok(written)
}
