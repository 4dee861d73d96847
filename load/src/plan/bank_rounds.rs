//! [`RoundsLoad`]: `bank --scenario write-skew` and `--scenario double-spend`, which send rounds of
//! concurrent withdrawals, each round opened by a reset of the bank, instead of a stream of
//! transfers. A round is a pure function of its number, as `run`'s operations are.

use std::time::Duration;

use reqwest::Url;

use crate::plan::api::Header;
use crate::plan::bank_api::BankApi;

/// What each round sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attack {
    /// Two members of one household (`racebank --households a+b`), each opening with half of
    /// `total`; each round withdraws [`Attack::skew_amount`] from both at once: either alone is
    /// covered by the household, both together take it below zero.
    WriteSkew {
        /// The two members.
        members: [String; 2],
        /// The household's money.
        total: i64,
    },
    /// Jepsen's ledger attack: one account funded with `fund`, then `min..=max` withdrawals of
    /// `amount` at once (one more each round, wrapping), of which at most one may succeed.
    DoubleSpend {
        /// The account.
        account: String,
        /// Its balance at the start of each round.
        fund: i64,
        /// Each withdrawal.
        amount: i64,
        /// The fewest withdrawals in a round.
        min: u64,
        /// The most.
        max: u64,
    },
}

impl Attack {
    /// The withdrawal each member of a write-skew pair asks for: more than half the total, so
    /// two exceed it, and no more than the total, so one alone is covered.
    pub fn skew_amount(total: i64) -> i64 {
        (total / 2 + (total / 10).max(1)).min(total)
    }

    /// The money a round's accounts open with, together: the household's, or the account's.
    pub fn opening_total(&self) -> i64 {
        self.openings().iter().map(|(_, balance)| balance).sum()
    }

    /// The balances a round opens with (accounts not named open at 0).
    pub fn openings(&self) -> Vec<(String, i64)> {
        match self {
            Attack::WriteSkew { members, total } => vec![
                (members[0].clone(), total / 2),
                (members[1].clone(), total - total / 2),
            ],
            Attack::DoubleSpend { account, fund, .. } => vec![(account.clone(), *fund)],
        }
    }

    /// The withdrawals of round `round` (from 0), sent at once: (account, amount).
    pub fn withdrawals(&self, round: u64) -> Vec<(String, i64)> {
        match self {
            Attack::WriteSkew { members, total } => members
                .iter()
                .map(|member| (member.clone(), Self::skew_amount(*total)))
                .collect(),
            Attack::DoubleSpend {
                account,
                amount,
                min,
                max,
                ..
            } => {
                let size = min + round % (max - min + 1);
                (0..size).map(|_| (account.clone(), *amount)).collect()
            }
        }
    }

    /// `write-skew` or `double-spend`.
    pub fn name(&self) -> &'static str {
        match self {
            Attack::WriteSkew { .. } => "write-skew",
            Attack::DoubleSpend { .. } => "double-spend",
        }
    }
}

/// One `bank --scenario write-skew|double-spend` run.
#[derive(Debug, Clone)]
pub struct RoundsLoad {
    /// The replicas of the bank server: withdrawal `i` of a round goes to replica `i % n` (the
    /// two members of a write-skew pair to two replicas), every reset to the first.
    pub targets: Vec<Url>,
    /// Headers sent with every request (`-H`).
    pub headers: Vec<Header>,
    /// The bank's withdrawal, set-up and read-all routes (racebank's by default).
    pub api: BankApi,
    /// What each round sends.
    pub attack: Attack,
    /// How many rounds.
    pub rounds: u64,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RoundsLoad {
    /// The write-skew attack on `alice` and `bob` (100 between them) at `url`, 20 rounds.
    pub fn write_skew(url: Url, members: [String; 2], total: i64) -> Self {
        RoundsLoad {
            targets: vec![url],
            headers: Vec::new(),
            api: BankApi::default(),
            attack: Attack::WriteSkew { members, total },
            rounds: 20,
            timeout: Duration::from_secs(10),
        }
    }

    /// Jepsen's ledger attack on `account` at `url`: fund 10, 1 to 16 withdrawals of 9 at once,
    /// 32 rounds.
    pub fn double_spend(url: Url, account: String) -> Self {
        RoundsLoad {
            targets: vec![url],
            headers: Vec::new(),
            api: BankApi::default(),
            attack: Attack::DoubleSpend {
                account,
                fund: 10,
                amount: 9,
                min: 1,
                max: 16,
            },
            rounds: 32,
            timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_skew_pair_is_covered_alone_and_not_together() {
        for total in [2, 3, 10, 100, 1001] {
            let amount = Attack::skew_amount(total);
            assert!(amount <= total && 2 * amount > total, "{total}: {amount}");
        }
        let attack = Attack::WriteSkew {
            members: ["a".into(), "b".into()],
            total: 100,
        };
        assert_eq!(attack.openings(), [("a".into(), 50), ("b".into(), 50)]);
        assert_eq!(attack.opening_total(), 100);
        assert_eq!(attack.withdrawals(7), [("a".into(), 60), ("b".into(), 60)]);
    }

    #[test]
    fn double_spend_rounds_grow_from_min_to_max_and_wrap() {
        let load = RoundsLoad::double_spend("http://127.0.0.1:1".parse().unwrap(), "0".into());
        let sizes: Vec<usize> = (0..18).map(|r| load.attack.withdrawals(r).len()).collect();
        assert_eq!(sizes[..3], [1, 2, 3]);
        assert_eq!(sizes[15..], [16, 1, 2]);
    }
}
