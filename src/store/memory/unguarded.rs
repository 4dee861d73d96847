//! Unguarded: read the balance, do the work, write the result back. The race itself.
//!
//! Two requests that read the same balance both compute from it; the second write erases the first.
//! Two withdrawals that read the same balance both pass the funds check, and both are paid out.
//! `mutex` and `semaphore:N` run this same section inside an in-process guard.
//!
//! Cancel-safe: the only await is the work, so a dropped request either wrote and recorded its
//! write, or did neither.

use super::cell::Cell;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

pub(super) async fn apply(
    cell: &Cell,
    work: &Work,
    op: Op,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let read = cell.read();
    let new_balance = op.apply_to(read)?;
    work.run().await?;
    cell.overwrite(op, read, new_balance, claim)?;
    Ok(new_balance)
}
