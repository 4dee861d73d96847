//! The operation sequence: operation `i` is a pure function of `(seed, i)`.
//!
//! Deriving each operation from a hash of its index (splitmix64) rather than from a shared random
//! generator means workers need no lock to pick their next operation, and the same seed always
//! produces the same sequence, whatever the concurrency or the number of threads.

use std::fmt;
use std::str::FromStr;

/// Deposit or withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `POST /deposit`.
    Deposit,
    /// `POST /withdraw`.
    Withdraw,
}

/// One operation of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Deposit or withdrawal.
    pub kind: Kind,
    /// The amount in minor units (at least 1).
    pub amount: i64,
}

/// How operations are drawn: the seed, the share of withdrawals and the amounts.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    seed: u64,
    /// Withdraw when the top 53 bits of the hash are below this.
    withdraw_below: u64,
    amounts: AmountSpec,
}

const FRACTION_BITS: u32 = 53;

impl Plan {
    /// A plan for `withdraw_ratio` (0 to 1) of withdrawals with amounts from `amounts`.
    pub fn new(seed: u64, withdraw_ratio: f64, amounts: AmountSpec) -> Self {
        let scale = (1u64 << FRACTION_BITS) as f64;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a share from 0 to 1 times 2^FRACTION_BITS: a whole number from 0 to the scale"
        )]
        let withdraw_below = (withdraw_ratio.clamp(0.0, 1.0) * scale) as u64;
        Plan {
            seed,
            withdraw_below,
            amounts,
        }
    }

    /// Operation number `index`.
    #[inline]
    pub fn op(&self, index: u64) -> Op {
        let first = splitmix64(self.seed ^ splitmix64(index));
        let second = splitmix64(first);
        let kind = if (first >> (64 - FRACTION_BITS)) < self.withdraw_below {
            Kind::Withdraw
        } else {
            Kind::Deposit
        };
        let width = (self.amounts.max - self.amounts.min).unsigned_abs() + 1;
        // Multiply-shift maps the hash onto 0..width without a division.
        let offset = ((u128::from(second) * u128::from(width)) >> 64) as i64;
        Op {
            kind,
            amount: self.amounts.min + offset,
        }
    }

    /// Whether every operation is a deposit.
    pub fn deposits_only(&self) -> bool {
        self.withdraw_below == 0
    }

    /// Whether every operation is a withdrawal.
    pub fn withdrawals_only(&self) -> bool {
        self.withdraw_below >= 1u64 << FRACTION_BITS
    }

    /// The amounts drawn from.
    pub fn amounts(&self) -> AmountSpec {
        self.amounts
    }
}

/// The `--amount` flag: one amount, or a range picked from per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountSpec {
    /// The smallest amount.
    pub min: i64,
    /// The largest amount (equal to `min` for a fixed amount).
    pub max: i64,
}

/// The largest amount accepted, so that sums of a billion requests still fit comfortably.
pub(crate) const MAX_AMOUNT: i64 = 1_000_000_000_000;

impl AmountSpec {
    /// The amount when it is fixed.
    pub fn fixed(self) -> Option<i64> {
        (self.min == self.max).then_some(self.min)
    }
}

impl FromStr for AmountSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let one = |part: &str| -> Result<i64, String> {
            match part.trim().parse::<i64>() {
                Ok(value) if (1..=MAX_AMOUNT).contains(&value) => Ok(value),
                _ => Err(format!(
                    "`{}` is not an amount: use a whole number of minor units from 1 to {MAX_AMOUNT}",
                    part.trim()
                )),
            }
        };
        let (min, max) = if let Some((min, max)) = text.split_once("..") {
            (one(min)?, one(max.strip_prefix('=').unwrap_or(max))?)
        } else {
            let value = one(text)?;
            (value, value)
        };
        if min > max {
            return Err(format!("`{text}`: the range must run from small to large"));
        }
        Ok(AmountSpec { min, max })
    }
}

impl fmt::Display for AmountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fixed() {
            Some(amount) => write!(f, "{amount}"),
            None => write!(f, "{}..{}", self.min, self.max),
        }
    }
}

/// The splitmix64 finaliser: a fast, well-mixed 64-bit hash.
#[inline]
pub(crate) fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: i64, max: i64) -> AmountSpec {
        AmountSpec { min, max }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
        let a = Plan::new(42, 0.3, range(1, 100));
        let b = Plan::new(42, 0.3, range(1, 100));
        let c = Plan::new(43, 0.3, range(1, 100));
        let seq = |plan: &Plan| (0..1000).map(|i| plan.op(i)).collect::<Vec<_>>();
        assert_eq!(seq(&a), seq(&b));
        assert_ne!(seq(&a), seq(&c));
        // Order of evaluation does not matter: operation i is a function of i alone.
        assert_eq!(a.op(999), seq(&b)[999]);
    }

    #[test]
    fn ratios_zero_and_one_give_only_deposits_or_only_withdrawals() {
        let deposits = Plan::new(7, 0.0, range(5, 5));
        let withdrawals = Plan::new(7, 1.0, range(5, 5));
        assert!(deposits.deposits_only() && !deposits.withdrawals_only());
        assert!(withdrawals.withdrawals_only() && !withdrawals.deposits_only());
        assert!((0..10_000).all(|i| deposits.op(i)
            == Op {
                kind: Kind::Deposit,
                amount: 5
            }));
        assert!((0..10_000).all(|i| withdrawals.op(i).kind == Kind::Withdraw));
    }

    #[test]
    fn amounts_stay_in_range_and_the_ratio_is_roughly_kept() {
        let plan = Plan::new(1, 0.3, range(1, 100));
        let ops: Vec<Op> = (0..100_000).map(|i| plan.op(i)).collect();
        assert!(ops.iter().all(|op| (1..=100).contains(&op.amount)));
        assert!(ops.iter().any(|op| op.amount == 1) && ops.iter().any(|op| op.amount == 100));
        let withdrawals = ops.iter().filter(|op| op.kind == Kind::Withdraw).count();
        // 30% of 100,000 with a very wide margin (the standard deviation is about 145).
        assert!((28_000..=32_000).contains(&withdrawals), "{withdrawals}");
    }
}
