//! Lease: a lease (`SET lock:<id> token NX PX ttl`) on every account the move reads, taken one at
//! a time in id order; the unguarded section; release with compare-and-delete.
//!
//! Taking them in id order is what keeps two transfers in opposite directions from each holding
//! one lease and polling for the other's until both give up. A lease runs out while its request
//! waits for the next one, so once all are granted they are renewed together, and only if every
//! one is still the request's ([`scripts`]' `RENEW`); if one ran out meanwhile (and may have gone
//! to another request, which then read and wrote under it), the request gives back what it holds
//! and takes them all again. As for the single account ([`crate::store::redis::lease`]), the
//! leases are then safe only while the work ends before they run out: a lease that expires
//! mid-work lets a second request in, and both write blind.

use std::time::Duration;

use rand::Rng;
use redis::aio::ConnectionManager;

use super::scripts::RENEW_SCRIPT;
use super::{unguarded, RedisBank, Section};
use crate::domain::bank::BankSpec;
use crate::domain::error::AccountError;
use crate::domain::work::Work;
use crate::store::redis::lease::LOCK_WAIT_LIMIT;
use crate::store::redis::{scripts, unavailable};

/// The longest pause between two tries at a lease.
const MAX_BACKOFF: Duration = Duration::from_millis(8);

pub(super) async fn apply(section: &Section<'_>, ttl: Duration) -> Result<Vec<i64>, AccountError> {
    let reads = section.mv.reads(section.spec);
    let leases = Leases::acquire(section.bank, section.spec, section.work, &reads, ttl).await?;
    // Blind, as unguarded: if a lease ran out during the work, these writes still land.
    let outcome = unguarded::apply(section).await;
    leases.release().await;
    outcome
}

/// The leases one request holds (or held, until they ran out without its knowing).
pub(super) struct Leases {
    /// Each lease's key and token.
    held: Vec<(String, String)>,
    connection: ConnectionManager,
    released: bool,
}

impl Leases {
    /// Takes a lease on each account of `positions`, in id order, polling while one is taken;
    /// gives up with a 503 after [`LOCK_WAIT_LIMIT`] in all, and at once if the server stops.
    pub(super) async fn acquire(
        bank: &RedisBank,
        spec: &BankSpec,
        work: &Work,
        positions: &[usize],
        ttl: Duration,
    ) -> Result<Self, AccountError> {
        let mut ordered = positions.to_vec();
        spec.sort_by_id(&mut ordered);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let token = format!("{:016x}", rand::random::<u64>());
        let mut leases = Self {
            held: Vec::with_capacity(ordered.len()),
            connection: bank.connection.clone(),
            released: false,
        };
        let keys: Vec<&String> = ordered.iter().map(|&p| &bank.keys.locks[p]).collect();
        let taking = async {
            let mut backoff = Duration::from_millis(1);
            loop {
                for &key in &keys {
                    poll(&mut leases.connection.clone(), key, &token, ttl_ms).await?;
                    leases.held.push((key.clone(), token.clone()));
                }
                if leases.renew(&token, ttl_ms).await? {
                    return Ok::<(), AccountError>(());
                }
                tracing::debug!(leases = ?keys, "a lease ran out while the next was awaited");
                release(&mut leases.connection, &std::mem::take(&mut leases.held)).await;
                pause(&mut backoff).await;
            }
        };
        // On any failure `leases` is dropped, which releases what it took.
        work.unless_stopped(tokio::time::timeout(LOCK_WAIT_LIMIT, taking))
            .await?
            .map_err(|_| AccountError::Unavailable {
                store: "redis",
                detail: format!(
                    "an account's lease stayed taken for {}s",
                    LOCK_WAIT_LIMIT.as_secs()
                ),
            })??;
        Ok(leases)
    }

    /// Renews every lease held to its full `ttl_ms`, if each is still the request's (`token`);
    /// false, renewing none, if one ran out. A single lease was granted just now: nothing to renew.
    async fn renew(&mut self, token: &str, ttl_ms: u64) -> Result<bool, AccountError> {
        if self.held.len() < 2 {
            return Ok(true);
        }
        let mut invocation = RENEW_SCRIPT.prepare_invoke();
        for (key, _) in &self.held {
            invocation.key(key);
        }
        let renewed: i64 = invocation
            .arg(token)
            .arg(ttl_ms)
            .invoke_async(&mut self.connection)
            .await
            // Leases renewed but never answered run out by themselves: renewing is not a write.
            .map_err(unavailable)?;
        Ok(renewed == 1)
    }

    /// Deletes every lease still ours. A failure only means it expires by itself.
    pub(super) async fn release(mut self) {
        self.released = true;
        release(&mut self.connection, &self.held).await;
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // A request dropped (or failed) while holding leases: free them now rather than after
        // the ttl.
        if self.released || self.held.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (mut connection, held) = (self.connection.clone(), std::mem::take(&mut self.held));
            runtime.spawn(async move { release(&mut connection, &held).await });
        }
    }
}

/// Tries `SET key token NX PX ttl` until it is granted, with a short randomised backoff.
async fn poll(
    connection: &mut ConnectionManager,
    key: &str,
    token: &str,
    ttl_ms: u64,
) -> Result<(), AccountError> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let granted: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(connection)
            .await
            // A lease granted but never answered expires by itself: taking it is not a write.
            .map_err(unavailable)?;
        if granted.is_some() {
            return Ok(());
        }
        pause(&mut backoff).await;
    }
}

/// Sleeps about `backoff` (randomised, so that requests waiting together spread out), then
/// doubles it, up to [`MAX_BACKOFF`].
async fn pause(backoff: &mut Duration) {
    let jittered = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
    tokio::time::sleep(jittered).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// Compare-and-delete of each lease, in the single account's script.
async fn release(connection: &mut ConnectionManager, held: &[(String, String)]) {
    for (key, token) in held {
        let released: Result<i64, _> = scripts::RELEASE_SCRIPT
            .key(key)
            .arg(token)
            .invoke_async(connection)
            .await;
        match released {
            Ok(1) => {}
            Ok(_) => tracing::debug!(
                key,
                "the lease ran out before release; another holder has it"
            ),
            Err(error) => {
                tracing::warn!(%error, key, "could not release the lease; it will expire");
            }
        }
    }
}
