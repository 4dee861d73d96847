//! Semaphore(N): the unguarded section, up to N requests at a time.
//!
//! A mutex is a semaphore with one permit. With more permits, up to N requests share the window, and
//! each of them can erase the others' writes: fewer lost updates as N shrinks, none only at N = 1.
//! Semaphores bound load on a resource; they do not make read-modify-write safe.

use tokio::sync::Semaphore;

use super::unguarded::read_work_write;
use crate::account::{AccountError, Shared};
use crate::money::Op;

pub(super) async fn apply(
    permits: &Semaphore,
    shared: &Shared,
    op: Op,
) -> Result<i64, AccountError> {
    // As in `mutex`: the fast path first, which cannot jump the queue of waiting requests.
    let _permit = match permits.try_acquire() {
        Ok(permit) => permit,
        Err(_) => permits
            .acquire()
            .await
            .expect("the account's semaphore is never closed"),
    };
    read_work_write(shared, op).await
}
