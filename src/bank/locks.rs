//! `account-locks`: one in-process lock per account, taken one at a time, and a deadlock detector.
//!
//! A transfer locks the account it debits, does its work, then locks the rest of what it reads:
//! the way a handler loads one account, checks it, then loads the other. In `--lock-order
//! request`, two transfers in opposite directions (A to B, B to A) each hold the lock the other
//! wants next: a deadlock. In-process locks would wait forever, so every wait is checked first:
//! a request about to wait for a lock whose holder waits (directly or through others) for a lock
//! this request holds would wait for itself. It gives up instead, releases what it holds and
//! answers 503 `deadlock`, and the other goes on, as PostgreSQL's detector aborts one of the two.
//! In `--lock-order id` every request takes its locks by account id, and no cycle can form.
//!
//! A wait is also bounded by [`LOCK_WAIT`], so nothing hangs whatever the cause, and cut short
//! when the server stops. Like `mutex`, these locks see only this process's requests.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::error::AccountError;
use crate::domain::work::Work;

/// The longest a request waits for one account's lock before it answers 503.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);

/// One lock per account, and who holds and waits for which.
#[derive(Debug)]
pub(crate) struct AccountLocks {
    table: Mutex<Table>,
    /// Woken when an account's lock is released.
    released: Vec<Notify>,
    next_owner: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    /// The owner holding each account's lock.
    holder: Vec<Option<u64>>,
    /// The account each waiting owner waits for.
    waits_for: HashMap<u64, usize>,
}

impl Table {
    /// Whether `owner` waiting for `account` would close a cycle of waits back to `owner`.
    fn closes_cycle(&self, owner: u64, mut account: usize) -> bool {
        // Each step moves to another waiting owner; a chain longer than the waiters has a cycle
        // that does not include `owner`, which its own members detect.
        for _ in 0..=self.waits_for.len() {
            match self.holder[account] {
                Some(holder) if holder == owner => return true,
                Some(holder) => match self.waits_for.get(&holder) {
                    Some(&next) => account = next,
                    None => return false,
                },
                None => return false,
            }
        }
        false
    }
}

/// The locks one request holds, released when dropped.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    locks: &'a AccountLocks,
    owner: u64,
    accounts: Vec<usize>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut table = self.locks.table();
        table.waits_for.remove(&self.owner);
        for &account in &self.accounts {
            table.holder[account] = None;
        }
        drop(table);
        for &account in &self.accounts {
            self.locks.released[account].notify_waiters();
        }
    }
}

impl AccountLocks {
    /// Locks for `accounts` accounts, all free.
    pub(crate) fn new(accounts: usize) -> Self {
        Self {
            table: Mutex::new(Table {
                holder: vec![None; accounts],
                waits_for: HashMap::new(),
            }),
            released: (0..accounts).map(|_| Notify::new()).collect(),
            next_owner: AtomicU64::new(0),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks `accounts` in the order given, doing `work` after the first: a deadlock found, the
    /// wait timed out or the server stopping answers an error, with every lock taken released.
    pub(crate) async fn lock(
        &self,
        accounts: &[usize],
        work: &Work,
        bank: &crate::domain::bank::BankSpec,
    ) -> Result<Held<'_>, AccountError> {
        let mut held = Held {
            locks: self,
            owner: self.next_owner.fetch_add(1, Ordering::Relaxed),
            accounts: Vec::with_capacity(accounts.len()),
        };
        for (n, &account) in accounts.iter().enumerate() {
            if n == 1 {
                work.run().await?;
            }
            self.acquire(&mut held, account, work, bank).await?;
        }
        if accounts.len() == 1 {
            work.run().await?;
        }
        Ok(held)
    }

    /// Takes one account's lock for `held`, waiting while another holds it.
    async fn acquire(
        &self,
        held: &mut Held<'_>,
        account: usize,
        work: &Work,
        bank: &crate::domain::bank::BankSpec,
    ) -> Result<(), AccountError> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let mut released = pin!(self.released[account].notified());
            {
                let mut table = self.table();
                if table.holder[account].is_none() {
                    table.holder[account] = Some(held.owner);
                    table.waits_for.remove(&held.owner);
                    held.accounts.push(account);
                    return Ok(());
                }
                if table.closes_cycle(held.owner, account) {
                    table.waits_for.remove(&held.owner);
                    return Err(AccountError::Deadlock(format!(
                        "waiting for account `{}`'s lock would have waited for this request itself: \
                         another request holds it and waits for a lock this one holds (lock order \
                         `request`; `--lock-order id` cannot deadlock)",
                        bank.id(account)
                    )));
                }
                table.waits_for.insert(held.owner, account);
                // Registered before the table is unlocked, so a release in between still wakes it.
                released.as_mut().enable();
            }
            let woken = work
                .unless_stopped(tokio::time::timeout_at(deadline, released))
                .await?;
            if woken.is_err() {
                self.table().waits_for.remove(&held.owner);
                return Err(AccountError::Deadlock(format!(
                    "waited longer than {} for account `{}`'s lock",
                    crate::duration::format_duration(LOCK_WAIT),
                    bank.id(account)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    /// Owners 1, 2, 3 hold accounts 0, 1, 2; `waits` says who waits for which account.
    fn table(waits: &[(u64, usize)]) -> Table {
        Table {
            holder: vec![Some(1), Some(2), Some(3), None],
            waits_for: waits.iter().copied().collect(),
        }
    }

    #[test]
    fn a_wait_that_closes_a_cycle_through_other_waiters_is_a_deadlock() {
        // 1 waits for 2's account, 2 for 3's: 3 waiting for 1's closes the ring.
        let waits = table(&[(1, 1), (2, 2)]);
        assert!(waits.closes_cycle(3, 0));
        // Waiting for a free account, or for a holder that waits for nobody, is not.
        assert!(!waits.closes_cycle(3, 3));
        assert!(!table(&[(1, 1)]).closes_cycle(3, 0));
    }

    #[test]
    fn a_cycle_among_others_is_left_to_its_members() {
        // 1 and 2 wait for each other; 3 waiting for 1's account joins no cycle of its own.
        let waits = table(&[(1, 1), (2, 0)]);
        assert!(!waits.closes_cycle(3, 0));
    }
}
