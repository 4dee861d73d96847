//! Optimistic: no lock. Read, work, then compare-and-swap; if the balance moved, read again and redo.
//!
//! The compare is on the balance itself rather than on a separate version: the new balance is a pure
//! function of the one read, so if the balance still equals what was read, the result is right even
//! if others wrote and undid in between (an ABA is harmless here). A database row whose update
//! depends on more than the balance compares a version column instead, as the PostgreSQL store does.
//!
//! Under contention most attempts conflict and redo the work, so each request costs more; a bound on
//! retries turns starvation into a clear 503 instead of a request that spins forever.

use super::cell::Cell;
use crate::domain::error::AccountError;
use crate::domain::idempotency::Claim;
use crate::domain::money::Op;
use crate::domain::work::Work;

pub(super) async fn apply(
    cell: &Cell,
    work: &Work,
    op: Op,
    max_retries: u32,
    claim: Option<&Claim<'_>>,
) -> Result<i64, AccountError> {
    let mut retries = 0;
    let outcome = loop {
        let read = cell.read();
        let new_balance = match op.apply_to(read) {
            Ok(balance) => balance,
            Err(refusal) => break Err(refusal.into()),
        };
        if let Err(stopped) = work.run().await {
            break Err(stopped);
        }
        match cell.compare_and_write(op, read, new_balance, claim) {
            Ok(true) => break Ok(new_balance),
            Ok(false) => {}
            Err(taken) => break Err(taken),
        }
        if retries == max_retries {
            break Err(AccountError::Contention { retries });
        }
        retries += 1;
    };
    let gave_up = matches!(outcome, Err(AccountError::Contention { .. }));
    if retries > 0 || gave_up {
        cell.ledger().record_retries(u64::from(retries), gave_up);
    }
    outcome
}
