//! Atomic: do the work first, then one script that checks funds and overflow and applies the change.
//!
//! The Redis counterpart of `UPDATE account SET balance = balance + $1 WHERE balance >= $2`: the
//! check and the change are one step inside Redis, so nothing computes from a stale read, on one
//! replica or many. `INCRBY` alone would be atomic too, but it cannot refuse an overdraft; the
//! script adds the funds check (409) and turns `INCRBY`'s overflow error into a refusal (422), and
//! records the operation in the ledger in the same step.

use super::guard::Guarded;
use super::{after_write, kind_and_amount, scripts, Section};
use crate::domain::error::AccountError;
use crate::domain::money::{Op, Refusal};

pub(super) async fn apply(mut section: Section<'_>) -> Result<i64, AccountError> {
    section.work.run().await?;
    let (kind, amount) = kind_and_amount(section.op);
    let mut invocation = section.guarded(&scripts::ATOMIC_SCRIPT);
    invocation
        .key(&section.keys.balance)
        .key(&section.keys.ledger)
        .arg(kind)
        .arg(amount);
    section.keyed(&mut invocation);
    let answer: Guarded<(String, i64)> = invocation
        .invoke_async(&mut section.connection)
        .await
        .map_err(after_write)?;
    let (outcome, balance) = answer.open(section.watermark, section.keys)?;
    match (outcome.as_str(), section.op) {
        ("ok", _) => Ok(balance),
        ("taken", _) => Err(AccountError::KeyInUse),
        ("insufficient", Op::Withdraw(_)) => {
            Err(Refusal::InsufficientFunds { balance, amount }.into())
        }
        ("overflow", Op::Deposit(_)) => Err(Refusal::WouldOverflow { balance, amount }.into()),
        _ => Err(AccountError::OutcomeUnknown {
            store: "redis",
            detail: format!("the atomic script answered `{outcome}`"),
        }),
    }
}
