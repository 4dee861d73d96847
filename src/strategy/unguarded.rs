//! Unguarded: read the balance, do the work, write the result back. The race itself.
//!
//! Two requests that read the same balance both compute from it; the second write erases the first.
//! Two withdrawals that read the same balance both pass the funds check, and both are paid out.

use crate::account::{AccountError, Shared};
use crate::money::Op;

pub(super) async fn apply(shared: &Shared, op: Op) -> Result<i64, AccountError> {
    read_work_write(shared, op).await
}

/// The read -> check -> work -> write section that the guarded strategies wrap.
///
/// Cancel-safe: the only await is the work, so a dropped request either wrote and recorded its
/// write, or did neither.
pub(super) async fn read_work_write(shared: &Shared, op: Op) -> Result<i64, AccountError> {
    let read = shared.read();
    let new_balance = op.apply_to(read)?;
    shared.work().run().await;
    shared.overwrite(op, read, new_balance);
    Ok(new_balance)
}
