//! The judgement of `bank --scenario write-skew|double-spend`, from the answers alone, round by
//! round (each round opens from a reset, so rounds are independent):
//! - write skew: both withdrawals of a household pair answered 2xx, and the balances they
//!   answered sum below zero: each checked the household's total, neither saw the other's debit.
//!   A bank whose answers say no balance (`--withdraw-balance-pointer` finds none) is judged by
//!   the amounts: the round's opening money less every withdrawal answered 2xx, which is below
//!   zero whenever both were (each takes more than half); the witness says so, as it then rests
//!   on the set-up having opened the round and nothing else moving the money;
//! - double spend: more than one withdrawal from an account that covers only one answered 2xx
//!   (the balances are not needed).
//!
//! A round with an answer of unknown outcome and no anomaly proves nothing either way.

use serde::Serialize;

use crate::engine::bank_rounds::{Outcome, Withdrawal};

/// What the rounds look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundsAnomaly {
    /// Two withdrawals took a household below zero.
    WriteSkew,
    /// More than one withdrawal spent the same money.
    DoubleSpend,
}

impl RoundsAnomaly {
    /// `write skew` or `double spend`, as the verdict line names it.
    pub fn name(self) -> &'static str {
        match self {
            RoundsAnomaly::WriteSkew => "write skew",
            RoundsAnomaly::DoubleSpend => "double spend",
        }
    }
}

/// A round, as a witness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundWitness {
    /// Its number, from 1.
    pub round: u64,
    /// The money its accounts opened with, together (the set-up before it).
    pub opening: i64,
    /// Its withdrawals and their answers.
    pub withdrawals: Vec<Withdrawal>,
}

impl RoundWitness {
    /// How many were applied.
    pub fn applied(&self) -> usize {
        self.withdrawals
            .iter()
            .filter(|w| matches!(w.outcome, Outcome::Applied { .. }))
            .count()
    }

    /// The sum of the balances the applied withdrawals answered; `None` when one answered none.
    pub fn answered_total(&self) -> Option<i128> {
        self.withdrawals
            .iter()
            .filter_map(|w| match w.outcome {
                Outcome::Applied { balance } => Some(balance.map(i128::from)),
                _ => None,
            })
            .sum()
    }

    /// The money left by the amounts: the opening less every withdrawal answered 2xx.
    pub fn implied_total(&self) -> i128 {
        let applied: i128 = (self.withdrawals.iter())
            .filter(|w| matches!(w.outcome, Outcome::Applied { .. }))
            .map(|w| i128::from(w.amount))
            .sum();
        i128::from(self.opening) - applied
    }

    /// The household's money after the round: as answered, else as the amounts imply.
    pub fn household(&self) -> i128 {
        self.answered_total()
            .unwrap_or_else(|| self.implied_total())
    }
}

/// The fold of a rounds run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundsCheck {
    /// What is looked for.
    pub looks_for: RoundsAnomaly,
    /// Rounds sent.
    pub rounds: u64,
    /// Rounds with the anomaly.
    pub anomalies: u64,
    /// Rounds that held (every answer known, no anomaly).
    pub held: u64,
    /// Rounds with an answer of unknown outcome and no anomaly: no evidence.
    pub unjudged: u64,
    /// Withdrawals answered 200, refused, and otherwise, over all rounds.
    pub applied: u64,
    /// Refused (409).
    pub refused: u64,
    /// Rejected or of unknown outcome.
    pub failed: u64,
    /// The first round with the anomaly.
    pub first: Option<RoundWitness>,
    /// The worst: the most withdrawals applied (double spend) or the lowest household (write
    /// skew).
    pub worst: Option<RoundWitness>,
    /// The last.
    pub last: Option<RoundWitness>,
}

impl RoundsCheck {
    /// A check looking for `looks_for`.
    pub fn new(looks_for: RoundsAnomaly) -> Self {
        RoundsCheck {
            looks_for,
            rounds: 0,
            anomalies: 0,
            held: 0,
            unjudged: 0,
            applied: 0,
            refused: 0,
            failed: 0,
            first: None,
            worst: None,
            last: None,
        }
    }

    /// Takes one round into account.
    pub fn observe(&mut self, round: RoundWitness) {
        self.rounds += 1;
        for withdrawal in &round.withdrawals {
            match withdrawal.outcome {
                Outcome::Applied { .. } => self.applied += 1,
                Outcome::Refused => self.refused += 1,
                Outcome::Rejected | Outcome::Unknown => self.failed += 1,
            }
        }
        let anomaly = match self.looks_for {
            RoundsAnomaly::WriteSkew => round.applied() >= 2 && round.household() < 0,
            RoundsAnomaly::DoubleSpend => round.applied() > 1,
        };
        if !anomaly {
            let unknown = round
                .withdrawals
                .iter()
                .any(|w| matches!(w.outcome, Outcome::Unknown | Outcome::Rejected));
            if unknown {
                self.unjudged += 1;
            } else {
                self.held += 1;
            }
            return;
        }
        self.anomalies += 1;
        if self.first.is_none() {
            self.first = Some(round.clone());
        }
        if self
            .worst
            .as_ref()
            .is_none_or(|worst| self.badness(&round) > self.badness(worst))
        {
            self.worst = Some(round.clone());
        }
        self.last = Some(round);
    }

    fn badness(&self, round: &RoundWitness) -> i128 {
        match self.looks_for {
            RoundsAnomaly::WriteSkew => -round.household(),
            RoundsAnomaly::DoubleSpend => i128::try_from(round.applied()).unwrap_or(i128::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(number: u64, outcomes: &[Outcome]) -> RoundWitness {
        RoundWitness {
            round: number,
            opening: 100,
            withdrawals: outcomes
                .iter()
                .map(|&outcome| Withdrawal {
                    account: "a".into(),
                    amount: 9,
                    status: Some(200),
                    outcome,
                    latency_us: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn write_skew_is_two_applied_below_zero_and_an_unknown_proves_nothing() {
        let mut check = RoundsCheck::new(RoundsAnomaly::WriteSkew);
        let applied = |balance| Outcome::Applied {
            balance: Some(balance),
        };
        check.observe(round(1, &[applied(-10), applied(-10)]));
        check.observe(round(2, &[applied(-10), Outcome::Refused]));
        check.observe(round(3, &[applied(-10), Outcome::Unknown]));
        check.observe(round(4, &[applied(-30), applied(-10)]));
        assert_eq!((check.anomalies, check.held, check.unjudged), (2, 1, 1));
        assert_eq!(check.first.as_ref().map(|r| r.round), Some(1));
        assert_eq!(check.worst.as_ref().map(|r| r.round), Some(4));
        assert_eq!((check.applied, check.refused, check.failed), (6, 1, 1));
    }

    #[test]
    fn write_skew_without_answered_balances_is_judged_by_the_amounts() {
        let mut check = RoundsCheck::new(RoundsAnomaly::WriteSkew);
        let silent = Outcome::Applied { balance: None };
        let mut skewed = round(1, &[silent, silent]);
        for withdrawal in &mut skewed.withdrawals {
            withdrawal.amount = 60;
        }
        assert_eq!(skewed.answered_total(), None);
        assert_eq!(skewed.household(), -20, "100 less 60 and 60");
        check.observe(skewed);
        let mut covered = round(2, &[silent, silent]);
        covered.withdrawals[0].amount = 40;
        check.observe(covered);
        check.observe(round(3, &[silent, Outcome::Refused]));
        assert_eq!((check.anomalies, check.held), (1, 2));
        assert_eq!(check.worst.map(|r| r.household()), Some(-20));
    }

    #[test]
    fn double_spend_is_more_than_one_applied() {
        let mut check = RoundsCheck::new(RoundsAnomaly::DoubleSpend);
        let one = Outcome::Applied { balance: None };
        check.observe(round(1, &[one]));
        check.observe(round(2, &[one, Outcome::Refused, Outcome::Refused]));
        check.observe(round(3, &[one, one, Outcome::Refused]));
        check.observe(round(4, &[one, one, one]));
        assert_eq!((check.anomalies, check.held), (2, 2));
        assert_eq!(check.worst.map(|r| r.applied()), Some(3));
    }
}
