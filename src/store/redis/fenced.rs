//! Fenced: the lease plus a fencing token, Kleppmann's fix, and the half-fix that still loses.
//!
//! Every grant of the lock hands out the next token (`INCR`, in the same script as the grant). The
//! storage remembers the highest token it has seen and refuses any request carrying an older one:
//! that request's lease ran out and a newer holder has the account. It answers 503 (`lease-lost`)
//! having written nothing.
//!
//! Where the storage checks the token decides whether a read-modify-write is safe:
//!
//! - `fenced` ([`Check::ReadAndWrite`]): checked and remembered at the read, checked again at the
//!   write. Once a newer holder has read, every older holder's write is refused; so between a
//!   holder's read and its write no other write can land, which is exactly what the section needs.
//! - `fenced-write-only` ([`Check::WriteOnly`]): checked only at the write, as a storage that
//!   cannot see reads would do it. Not enough: the old holder, its lease gone, writes first (its
//!   token is still the highest the storage has seen), then the new holder, who read the balance
//!   before that write, writes over it. One acknowledged update lost, every time the work outlasts
//!   the lease. Kept as a lesson, next to the fix.
//!
//! The tokens are compared as decimal strings in the scripts, so they are exact at any size.

use std::time::Duration;

use super::guard::Guarded;
use super::lease::{Grant, Lock};
use super::{after_write, kind_and_amount, scripts, unavailable, Section};
use crate::domain::error::AccountError;

/// Where the storage checks the fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// At the read and at the write: safe.
    ReadAndWrite,
    /// Only at the write: still loses updates once the work outlasts the lease.
    WriteOnly,
}

pub(super) async fn apply(
    mut section: Section<'_>,
    ttl: Duration,
    check: Check,
) -> Result<i64, AccountError> {
    let lock = Lock::acquire(&section, ttl, Grant::Fenced).await?;
    let outcome = fenced_section(&mut section, lock.token(), check).await;
    lock.release().await;
    outcome
}

async fn fenced_section(
    section: &mut Section<'_>,
    token: &str,
    check: Check,
) -> Result<i64, AccountError> {
    let read = match check {
        Check::ReadAndWrite => {
            let answer: Guarded<(String, i64)> = section
                .guarded(&scripts::FENCED_READ_SCRIPT)
                .key(&section.keys.balance)
                .key(&section.keys.seen)
                .arg(token)
                .invoke_async(&mut section.connection)
                .await
                .map_err(unavailable)?;
            let (outcome, value) = answer.open(section.watermark, section.keys)?;
            if outcome != "ok" {
                return Err(fenced(token, value, "read"));
            }
            value
        }
        Check::WriteOnly => section.read().await?,
    };
    let new_balance = section.op.apply_to(read)?;
    section.work.run().await?;
    let (kind, amount) = kind_and_amount(section.op);
    let mut invocation = section.guarded(&scripts::FENCED_WRITE_SCRIPT);
    invocation
        .key(&section.keys.balance)
        .key(&section.keys.ledger)
        .key(&section.keys.seen)
        .arg(token)
        .arg(new_balance)
        .arg(read)
        .arg(-read)
        .arg(kind)
        .arg(amount);
    section.keyed(&mut invocation);
    let answer: Guarded<(String, i64)> = invocation
        .invoke_async(&mut section.connection)
        .await
        .map_err(after_write)?;
    let (outcome, value) = answer.open(section.watermark, section.keys)?;
    match outcome.as_str() {
        "ok" => Ok(new_balance),
        "taken" => Err(AccountError::KeyInUse),
        _ => Err(fenced(token, value, "write")),
    }
}

fn fenced(token: &str, seen: i64, step: &str) -> AccountError {
    AccountError::Fenced(format!(
        "this request's lease ran out before its {step} and a newer holder took the account: its \
         fencing token {token} is older than token {seen}, which the storage has already seen, so \
         the {step} was refused"
    ))
}
