//! Money is an integer number of minor units (cents): no floats anywhere, and every sum is checked.
//!
//! A balance is an `i64` that never goes below zero; an [`Amount`] is a positive `i64`. An [`Op`]
//! turns the balance it read into the balance it wants to write, or says why it cannot.

use std::fmt;

/// A positive number of minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i64);

impl Amount {
    /// Wraps a positive value; zero and negatives are not amounts.
    pub fn new(minor_units: i64) -> Option<Self> {
        (minor_units > 0).then_some(Self(minor_units))
    }

    /// The value in minor units.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One change a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add the amount.
    Deposit(Amount),
    /// Take the amount away, if the balance read covers it.
    Withdraw(Amount),
}

/// Why an operation computed on a read balance cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The balance this request read is below the amount: the funds check failed.
    #[error("balance {balance} is below the withdrawal of {amount}")]
    InsufficientFunds { balance: i64, amount: i64 },
    /// The deposit would take the balance past what an `i64` holds.
    #[error(
        "a deposit of {amount} onto {balance} exceeds the largest balance, {}",
        i64::MAX
    )]
    WouldOverflow { balance: i64, amount: i64 },
    /// The household's total, as this request read it, is below the amount taken out of it.
    #[error("the household's total of {total} is below the {amount} taken out of it")]
    HouseholdShort { total: i64, amount: i64 },
}

impl Op {
    /// Its name in the ledger, in kept answers and in messages: `deposit` or `withdrawal`.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Op::Deposit(_) => "deposit",
            Op::Withdraw(_) => "withdrawal",
        }
    }

    /// The amount, in minor units.
    pub(crate) fn amount(self) -> i64 {
        match self {
            Op::Deposit(amount) | Op::Withdraw(amount) => amount.get(),
        }
    }

    /// The balance to write, given the balance read: the funds check and the overflow check.
    pub fn apply_to(self, balance: i64) -> Result<i64, Refusal> {
        match self {
            Op::Deposit(amount) => {
                balance
                    .checked_add(amount.get())
                    .ok_or(Refusal::WouldOverflow {
                        balance,
                        amount: amount.get(),
                    })
            }
            Op::Withdraw(amount) if balance < amount.get() => Err(Refusal::InsufficientFunds {
                balance,
                amount: amount.get(),
            }),
            Op::Withdraw(amount) => Ok(balance - amount.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(value: i64) -> Amount {
        Amount::new(value).unwrap()
    }

    #[test]
    fn amounts_must_be_positive() {
        assert_eq!(Amount::new(0), None);
        assert_eq!(Amount::new(-5), None);
        assert_eq!(Amount::new(5).map(Amount::get), Some(5));
    }

    #[test]
    fn a_withdrawal_needs_the_balance_it_read_to_cover_it() {
        assert_eq!(Op::Withdraw(amount(10)).apply_to(10), Ok(0));
        assert_eq!(
            Op::Withdraw(amount(11)).apply_to(10),
            Err(Refusal::InsufficientFunds {
                balance: 10,
                amount: 11
            })
        );
    }

    #[test]
    fn a_deposit_that_would_overflow_is_refused_not_wrapped() {
        assert_eq!(Op::Deposit(amount(1)).apply_to(i64::MAX - 1), Ok(i64::MAX));
        assert!(matches!(
            Op::Deposit(amount(2)).apply_to(i64::MAX - 1),
            Err(Refusal::WouldOverflow { .. })
        ));
    }
}
