//! Unguarded: `SELECT` the move's read set, work, then one blind
//! `UPDATE ... SET balance = $computed` per account written, each statement on its own at READ
//! COMMITTED. The transfer as a typical SQL client writes it (Jepsen's `ysql.bank` does exactly
//! this), and the bank's race: two moves that read the same account both compute from what they
//! read, and the second write to it erases the first's. Money is created or destroyed, and each
//! write learns from `replaced = balance` what it erased, in its own statement.
//!
//! The debit and the credit commit apart, so a read between them sees half a transfer, and a
//! failure between them leaves it half done (answered 500 `outcome-unknown`).
//! `mutex`, `semaphore:N` and `account-locks` run this same section inside their in-process guards.

use super::ledger::Redos;
use super::section::{self, balances};
use super::BankDatabase;
use crate::domain::bank::{BankSpec, Move};
use crate::domain::error::AccountError;
use crate::domain::work::Work;
use crate::store::postgres::failure;

pub(super) async fn apply(
    database: &BankDatabase,
    spec: &BankSpec,
    work: &Work,
    mv: Move,
) -> Result<Vec<i64>, AccountError> {
    let client = database.client().await?;
    let seen = section::read(&client, database, &mv.reads(spec))
        .await
        .map_err(|attempt| attempt.into_error("reading the balances"))?;
    let written = mv.settle(spec, &balances(&seen))?;
    work.run().await?;
    failure::still_open(&client, "writing the balances")?;
    section::write_all(
        &client,
        database,
        mv,
        &seen,
        &written,
        Redos::default(),
        true,
    )
    .await
    .map_err(|attempt| attempt.into_error("writing the balances"))
}
