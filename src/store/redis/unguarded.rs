//! Unguarded: `GET`, work, `SET balance $n GET`. The race, across every replica.
//!
//! Two requests that read the same balance both compute from it, and the second `SET` erases the
//! first. `GET` on the old value is how the write learns what it replaced, so the ledger counts the
//! loss exactly. `mutex` and `semaphore:N` run this same section inside their in-process guard,
//! which sees only its own replica's requests.
//!
//! The funds check is on the balance read, as in memory: two withdrawals that read the same balance
//! both pass it.

use super::Section;
use crate::domain::error::AccountError;

pub(super) async fn apply(mut section: Section<'_>) -> Result<i64, AccountError> {
    let read = section.read().await?;
    let new_balance = section.op.apply_to(read)?;
    section.work.run().await?;
    section.overwrite(read, new_balance).await?;
    Ok(new_balance)
}
