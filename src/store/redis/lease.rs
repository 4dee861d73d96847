//! Lease: the Redis lock most teams reach for. `SET lock token NX PX ttl`; `GET`; work; the write;
//! release with compare-and-delete.
//!
//! It is safe while every holder finishes before its lease runs out. Once the work outlasts the
//! lease, Redis expires the lock while its holder is still working, a second request takes it and
//! reads the same balance, and both write: the second erases the first, and both are acknowledged.
//! Nothing in the holder can notice in time, because between its last check and its write there is
//! always a gap (a GC pause, a slow network, here simply the work). That is Martin Kleppmann's
//! argument in "How to do distributed locking" (2016); `fenced` is his fix.
//!
//! Waiting for the lock is a poll with a short randomised backoff (Redis has no queue for it),
//! bounded: after [`LOCK_WAIT_LIMIT`] the request gives up with a 503, and a stopping server cuts
//! the wait short. The lock of a request that is dropped is released in the background, or expires.

use std::time::Duration;

use rand::Rng;
use redis::aio::ConnectionManager;

use super::{scripts, unavailable, Keys, Section};
use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// How long a request waits for the lock before it answers 503.
pub(super) const LOCK_WAIT_LIMIT: Duration = Duration::from_secs(5);

/// The longest pause between two tries at the lock.
const MAX_BACKOFF: Duration = Duration::from_millis(8);

pub(super) async fn apply(mut section: Section<'_>, ttl: Duration) -> Result<i64, AccountError> {
    let lock = Lock::acquire(&section, ttl, Grant::Plain).await?;
    let outcome = section_under(&mut section).await;
    lock.release().await;
    outcome
}

async fn section_under(section: &mut Section<'_>) -> Result<i64, AccountError> {
    let read = section.read().await?;
    let new_balance = section.op.apply_to(read)?;
    section.work.run().await?;
    // Blind: if the lease ran out during the work, this write still lands.
    section.overwrite(read, new_balance).await?;
    Ok(new_balance)
}

/// How the lock is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grant {
    /// A random token, only to release what is ours.
    Plain,
    /// The next fencing token, handed out with the lock in one script.
    Fenced,
}

/// A held lock (or one that has run out without our knowing: that is the point).
pub(super) struct Lock {
    key: String,
    token: String,
    connection: ConnectionManager,
    released: bool,
}

impl Lock {
    /// Polls until the lock is free and takes it for `ttl`.
    pub(super) async fn acquire(
        section: &Section<'_>,
        ttl: Duration,
        grant: Grant,
    ) -> Result<Self, AccountError> {
        Self::acquire_for(&section.connection, section.keys, section.work, ttl, grant).await
    }

    /// [`Lock::acquire`] outside a request's section: for `/reset`, which must not land inside a
    /// holder's window (its write would erase the reset).
    pub(super) async fn acquire_for(
        connection: &ConnectionManager,
        keys: &Keys,
        work: &Work,
        ttl: Duration,
        grant: Grant,
    ) -> Result<Self, AccountError> {
        let mut connection = connection.clone();
        let waiting = poll(&mut connection, keys, ttl, grant);
        let token = work
            .unless_stopped(tokio::time::timeout(LOCK_WAIT_LIMIT, waiting))
            .await?
            .map_err(|_| AccountError::Unavailable {
                store: "redis",
                detail: format!(
                    "the account's lock stayed taken for {}s",
                    LOCK_WAIT_LIMIT.as_secs()
                ),
            })??;
        Ok(Self {
            key: keys.lock.clone(),
            token,
            connection,
            released: false,
        })
    }

    /// The token this lock was granted with (the fencing token, for [`Grant::Fenced`]).
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// Deletes the lock if it is still ours. A failure only means it expires by itself.
    pub(super) async fn release(mut self) {
        self.released = true;
        release(&mut self.connection, &self.key, &self.token).await;
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // A request dropped (or failed) while holding the lock: free it now rather than after the ttl.
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (mut connection, key, token) = (
                self.connection.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            runtime.spawn(async move { release(&mut connection, &key, &token).await });
        }
    }
}

async fn poll(
    connection: &mut ConnectionManager,
    keys: &Keys,
    ttl: Duration,
    grant: Grant,
) -> Result<String, AccountError> {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let plain_token = format!("{:016x}", rand::random::<u64>());
    let mut backoff = Duration::from_millis(1);
    loop {
        let granted: Option<String> = match grant {
            Grant::Plain => redis::cmd("SET")
                .arg(&keys.lock)
                .arg(&plain_token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<Option<String>>(connection)
                .await
                .map(|ok| ok.map(|_| plain_token.clone())),
            Grant::Fenced => {
                scripts::ACQUIRE_FENCED_SCRIPT
                    .key(&keys.lock)
                    .key(&keys.fence)
                    .arg(ttl_ms)
                    .invoke_async(connection)
                    .await
            }
        }
        // A lock granted but never answered expires by itself: taking it is not a write.
        .map_err(unavailable)?;
        if let Some(token) = granted {
            return Ok(token);
        }
        let jittered = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
        tokio::time::sleep(jittered).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn release(connection: &mut ConnectionManager, key: &str, token: &str) {
    let released: Result<i64, _> = scripts::RELEASE_SCRIPT
        .key(key)
        .arg(token)
        .invoke_async(connection)
        .await;
    match released {
        Ok(1) => {}
        Ok(_) => tracing::debug!(
            token,
            "the lease ran out before release; another holder has it"
        ),
        Err(error) => tracing::warn!(%error, "could not release the lease; it will expire"),
    }
}
