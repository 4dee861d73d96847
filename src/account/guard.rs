//! The in-process guards of `mutex` and `semaphore:N`, the same whatever the store.
//!
//! A mutex is a semaphore with one permit, so both are one tokio `Semaphore`. It is tokio's, not
//! std's, because the permit is held across the work on purpose: the work is the window in which
//! another request must not read. A std lock held across an await would block a runtime thread.
//!
//! These guards see only the requests of their own process. With one server that is every request;
//! with several replicas sharing a database, each replica admits its own request into the window at
//! the same moment, and the race is back. That is the lesson of `--store postgres --replicas 3`.

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// The guard a mode puts around the store's section, if any.
#[derive(Debug)]
pub(crate) struct Guard {
    permits: Option<(Semaphore, u32)>,
}

impl Guard {
    /// `Some(1)` for a mutex, `Some(n)` for a semaphore, `None` for no in-process guard.
    pub(crate) fn new(permits: Option<u32>) -> Self {
        Self {
            permits: permits.map(|permits| (Semaphore::new(permits as usize), permits)),
        }
    }

    /// Waits until no request is in the section and keeps every other out: for a reset, which
    /// must not land inside a request's window to be erased by its write. A semaphore's requests
    /// do not exclude each other, but each of them excludes a reset.
    pub(crate) async fn enter_alone(
        &self,
        work: &Work,
    ) -> Result<Option<SemaphorePermit<'_>>, AccountError> {
        let Some((permits, all)) = &self.permits else {
            return Ok(None);
        };
        let permit = work.unless_stopped(permits.acquire_many(*all)).await?;
        Ok(Some(
            permit.expect("the account's semaphore is never closed"),
        ))
    }

    /// Waits for a permit (none needed without a guard); a stopping server cuts the wait short.
    pub(crate) async fn enter(
        &self,
        work: &Work,
    ) -> Result<Option<SemaphorePermit<'_>>, AccountError> {
        let Some((permits, _)) = &self.permits else {
            return Ok(None);
        };
        // `try_acquire` first: uncontended, it skips the waiting future, which measured 3% of the
        // whole server's throughput with `--work none`. It cannot jump the queue: while requests
        // wait, a released permit passes straight to the first of them.
        if let Ok(permit) = permits.try_acquire() {
            return Ok(Some(permit));
        }
        let permit = work.unless_stopped(permits.acquire()).await?;
        Ok(Some(
            permit.expect("the account's semaphore is never closed"),
        ))
    }
}
