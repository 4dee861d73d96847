//! Atomic: do the work first, then apply the change in one indivisible step.
//!
//! The in-memory counterpart of `UPDATE account SET balance = balance + $1`: nothing computes from a
//! stale read, because the read and the write are one operation. Deposits would be a plain
//! `fetch_add`, but that wraps silently past `i64::MAX`; both directions therefore use
//! `fetch_update`, a compare-and-swap loop that checks overflow or funds on the current balance.

use crate::account::{AccountError, Shared};
use crate::money::Op;

pub(super) async fn apply(shared: &Shared, op: Op) -> Result<i64, AccountError> {
    shared.work().run().await;
    Ok(shared.update_in_place(op)?)
}
