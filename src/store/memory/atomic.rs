//! Atomic: do the work first, then apply the change in one indivisible step.
//!
//! The in-memory counterpart of `UPDATE account SET balance = balance + $1`: nothing computes from a
//! stale read, because the read and the write are one operation. Deposits would be a plain
//! `fetch_add`, but that wraps silently past `i64::MAX`; both directions therefore use
//! `fetch_update`, a compare-and-swap loop that checks overflow or funds on the current balance.

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
    work.run().await?;
    cell.update_in_place(op, claim)
}
