//! Atomic: do the work first, then one script that reads what the move reads, checks the rule
//! (the debited account's own balance, or its household's total) and moves the money.
//!
//! Nothing computes from a stale read and nothing can land between the check and the writes, on
//! one replica or many: no lost update, and no write skew in a household, since the script reads
//! every member's balance in the same step as it debits one.

use super::{scripts, Section};
use crate::domain::bank::Move;
use crate::domain::error::AccountError;
use crate::domain::money::Refusal;
use crate::store::redis::after_write;

pub(super) async fn apply(section: &Section<'_>) -> Result<Vec<i64>, AccountError> {
    section.work.run().await?;
    let reads = section.mv.reads(section.spec);
    // 1-based indices among the balances read, as the script counts them; 0 for none.
    let index = |position: usize| {
        reads
            .iter()
            .position(|&p| p == position)
            .map_or(0, |i| i + 1)
    };
    let (debited, credited) = match section.mv {
        Move::Deposit { to, .. } => (None, Some(to)),
        Move::Withdraw { from, .. } => (Some(from), None),
        Move::Transfer { from, to, .. } => (Some(from), Some(to)),
    };
    let household = debited
        .and_then(|from| section.spec.household(from))
        .unwrap_or_default();
    let (kind, from, to) = section.entry();
    let amount = section.mv.amount().get();
    let mut invocation = scripts::ATOMIC_SCRIPT.prepare_invoke();
    invocation
        .key(&section.bank.keys.ledger)
        .key(&section.bank.keys.scratch)
        .key(section.keys(&reads))
        .arg(kind)
        .arg(amount)
        .arg(from)
        .arg(to)
        .arg(debited.map_or(0, index))
        .arg(credited.map_or(0, index));
    for &member in household {
        invocation.arg(index(member));
    }
    let answer: Vec<String> = invocation
        .invoke_async(&mut section.bank.connection.clone())
        .await
        .map_err(after_write)?;
    outcome(&answer, amount)
}

/// The script's answer as the balances written, or the refusal it counted.
fn outcome(answer: &[String], amount: i64) -> Result<Vec<i64>, AccountError> {
    let number = |i: usize| answer.get(i).and_then(|text| text.parse::<i64>().ok());
    let unknown = || AccountError::OutcomeUnknown {
        store: "redis",
        detail: format!("the bank's atomic script answered {answer:?}"),
    };
    match answer.first().map(String::as_str) {
        Some("ok") => (1..answer.len())
            .map(|i| number(i).ok_or_else(unknown))
            .collect(),
        Some("insufficient") => {
            let balance = number(1).ok_or_else(unknown)?;
            Err(Refusal::InsufficientFunds { balance, amount }.into())
        }
        Some("overflow") => {
            let balance = number(1).ok_or_else(unknown)?;
            Err(Refusal::WouldOverflow { balance, amount }.into())
        }
        Some("household") => {
            // The script kept the total minus the amount as `carry * 2^63 + field`.
            let (carry, field) = (
                number(1).ok_or_else(unknown)?,
                number(2).ok_or_else(unknown)?,
            );
            let total = (i128::from(carry) << 63) + i128::from(field) + i128::from(amount);
            let total = i64::try_from(total).unwrap_or(i64::MIN);
            Err(Refusal::HouseholdShort { total, amount }.into())
        }
        _ => Err(unknown()),
    }
}
