//! Whether updates were lost, judged from the client's own evidence.
//!
//! The client knows the balance before, every acknowledged deposit and withdrawal, and the balance
//! after. A request that timed out or failed in transport may or may not have been applied, so,
//! like Jepsen's `:info` operations, it widens the expected balance into a range instead of being
//! guessed: `[exact - indeterminate withdrawals, exact + indeterminate deposits]`. An operation
//! retried is judged by all its attempts: one that may have been applied keeps it indeterminate
//! whatever the later ones say. Updates are lost only when money is provably missing or extra: the
//! final balance lies outside that range, or (no final balance needed) an overdraft, more paid out
//! than the account could ever have held. Duplicate answers (see [`crate::engine::seen`]) prove the
//! answers wrong, not the money: `InconsistentAnswers`. A run in which no operation was
//! acknowledged or refused proves nothing either way: `Inconclusive`, never `Consistent`. The
//! server's own `/stats`, when it has one, is compared but never trusted.
//!
//! A server that stops answering before the balance can be read again (killed, crashed, drained
//! by SIGTERM) leaves the final balance unknown. The answers still stand, and so do the proofs that
//! need no final balance (an overdraft is `Lost`, duplicates `InconsistentAnswers`); without one
//! of those the [`Conclusion`] is
//! `Unknown`, as Jepsen's checkers answer `:unknown` for a history they cannot decide. A server
//! that answers the read with no balance at all broke the protocol: `ProtocolError`.
//!
//! All of this assumes the run is the account's only client. When the answers show that another
//! client changed the account (balances off the ladder, or a server that acknowledged changes this
//! client never sent), no proof stands: the [`Conclusion`] is then `Inconclusive`, never "lost".

use serde::Serialize;

use crate::engine::probe::ServerStats;
use crate::engine::seen::{Ladder, Seen};
use crate::engine::stats::Stats;
use crate::plan::ops::Plan;

/// Whether the answered balances were checked for duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicates {
    /// Checked: answers that repeated another's balance, and answers off the expected ladder.
    Checked {
        /// Answers that repeated a balance another answer reported.
        duplicates: u64,
        /// Answers that no correct server could have given in this run.
        unexpected: u64,
    },
    /// Not checked, and why.
    NotChecked(&'static str),
}

impl Duplicates {
    /// From the merged bitset, or the reason there is none.
    pub fn from_seen(seen: Option<&Seen>, reason: &'static str) -> Self {
        match seen {
            Some(seen) => Duplicates::Checked {
                duplicates: seen.duplicates,
                unexpected: seen.unexpected,
            },
            None => Duplicates::NotChecked(reason),
        }
    }

    /// The number of duplicates, if checked.
    pub fn count(&self) -> Option<u64> {
        match self {
            Duplicates::Checked { duplicates, .. } => Some(*duplicates),
            Duplicates::NotChecked(_) => None,
        }
    }
}

/// The client's judgement of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The balance read before the run.
    pub initial: i64,
    /// The balance read after the run; `None` when the server no longer answered.
    pub final_balance: Option<i64>,
    /// The lowest balance consistent with the answers.
    pub expected_min: i128,
    /// The highest balance consistent with the answers.
    pub expected_max: i128,
    /// How far the final balance lies outside the range: positive when money vanished
    /// (`expected - final`), negative when it appeared, 0 inside the range; `None` without a
    /// final balance.
    pub lost_amount: Option<i128>,
    /// Acknowledged withdrawals exceed everything the account could have held.
    pub overdraft: bool,
    /// The duplicate check.
    pub duplicates: Duplicates,
    /// Operations the server answered definitely (acknowledged, or refused with 409): without
    /// one, the answers are no evidence either way.
    pub definite: u64,
}

impl Verdict {
    /// Judges a run from the balances read around it (`None` when the one after could not be
    /// read) and the merged stats.
    pub fn judge(
        initial: i64,
        final_balance: Option<i64>,
        stats: &Stats,
        duplicates: Duplicates,
    ) -> Self {
        let exact = i128::from(initial) + stats.acknowledged_net();
        let expected_min = exact - stats.indeterminate_withdrawals.sum;
        let expected_max = exact + stats.indeterminate_deposits.sum;
        let lost_amount = final_balance.map(|actual| {
            let actual = i128::from(actual);
            if actual < expected_min {
                expected_min - actual
            } else if actual > expected_max {
                expected_max - actual
            } else {
                0
            }
        });
        Verdict {
            initial,
            final_balance,
            expected_min,
            expected_max,
            lost_amount,
            // Even if every uncertain deposit went through, the withdrawals paid out more.
            overdraft: expected_max < 0,
            duplicates,
            definite: stats.deposits.count + stats.withdrawals.count + stats.refused,
        }
    }

    /// The expected balance when it is exact (no request was indeterminate).
    pub fn expected_exact(&self) -> Option<i128> {
        (self.expected_min == self.expected_max).then_some(self.expected_min)
    }

    /// No lost update, no overdraft, no duplicate, and a final balance to say so.
    pub fn consistent(&self) -> bool {
        self.lost_amount == Some(0) && !self.overdraft && self.duplicates.count().unwrap_or(0) == 0
    }

    /// The answers prove that updates were lost: money vanished or appeared (the final balance
    /// lies outside the range the acknowledged operations allow), or more was paid out than was
    /// ever held. The last needs no final balance, so it stands even when the server stopped
    /// answering. Duplicate answers alone prove no money missing: they are
    /// [`Conclusion::InconsistentAnswers`].
    pub fn proves_loss(&self) -> bool {
        self.lost_amount.is_some_and(|amount| amount != 0) || self.overdraft
    }
}

/// What a run concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// No lost amount, no overdraft, no duplicate, no sign of another client, and at least one
    /// operation answered definitely.
    Consistent,
    /// The answers prove that money is missing or extra: updates were lost.
    Lost,
    /// The answers prove nothing: another client changed the account during the run, or no
    /// operation was answered definitely (nothing acknowledged or refused).
    Inconclusive,
    /// The server stopped answering before the final balance could be read, and nothing that
    /// needs no final balance proves a loss: the run cannot be decided.
    Unknown,
    /// The money is right (or cannot be judged), but the answers contradict each other: two
    /// acknowledgements reported the same balance where every one must differ.
    InconsistentAnswers,
    /// The server answered the balance read after the run with no balance an account can hold:
    /// it broke the protocol, and the run cannot be judged.
    ProtocolError,
}

impl Conclusion {
    /// Judges the verdict, the cross-check and, when the balance read after the run was
    /// answered with something that is no balance, why; the reason when inconclusive.
    pub fn of(
        verdict: &Verdict,
        cross_check: Option<&CrossCheck>,
        unreadable_final: Option<&str>,
    ) -> (Self, Option<String>) {
        if let Duplicates::Checked { unexpected, .. } = verdict.duplicates {
            if unexpected > 0 {
                return (
                    Conclusion::Inconclusive,
                    Some(format!(
                        "{unexpected} answers reported balances this run alone cannot produce: another client changed the account during the run"
                    )),
                );
            }
        }
        if let Some(check) = cross_check.filter(|check| check.interference) {
            return (
                Conclusion::Inconclusive,
                Some(format!(
                    "the server acknowledged a net change of {} during the run where this client's requests account for {}: another client changed the account",
                    check.server_net,
                    if check.client_net_min == check.client_net_max {
                        check.client_net_min.to_string()
                    } else {
                        format!("{}..={}", check.client_net_min, check.client_net_max)
                    }
                )),
            );
        }
        if verdict.proves_loss() {
            (Conclusion::Lost, None)
        } else if unreadable_final.is_some() {
            (Conclusion::ProtocolError, None)
        } else if verdict.duplicates.count().unwrap_or(0) > 0 {
            (Conclusion::InconsistentAnswers, None)
        } else if verdict.final_balance.is_none() {
            (Conclusion::Unknown, None)
        } else if verdict.definite == 0 {
            (
                Conclusion::Inconclusive,
                Some(
                    "no evidence: no operation was acknowledged or refused, so the answers prove nothing either way"
                        .to_string(),
                ),
            )
        } else {
            (Conclusion::Consistent, None)
        }
    }
}

/// The server's account of the run next to the client's, and whether they agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// Lost updates the server counted during the run.
    pub lost_updates: u64,
    /// Money the server says those lost updates erased during the run, net.
    pub lost_net: i128,
    /// Of which erasures that removed money (gross)...
    pub lost_removed: i128,
    /// ...and erasures that added money (gross): erased withdrawals, or writes putting back what
    /// a staler write erased.
    pub lost_added: i128,
    /// Net change the server acknowledged during the run (Δ(deposit_sum - withdrawal_sum)).
    pub server_net: i128,
    /// Net change the client saw acknowledged.
    pub client_net: i128,
    /// The lowest net change the client's requests can explain (every uncertain withdrawal
    /// applied, no uncertain deposit).
    pub client_net_min: i128,
    /// The highest.
    pub client_net_max: i128,
    /// The server's net lies outside the client's range: it acknowledged changes this client did
    /// not send, so another client was active.
    pub interference: bool,
    /// The server's `expected_balance` after the run.
    pub server_expected_balance: i128,
    /// The client's expected balance (the low end when a range).
    pub client_expected_min: i128,
    /// The client's expected balance (the high end when a range).
    pub client_expected_max: i128,
    /// The server's `balance` after the run.
    pub server_balance: i64,
    /// Optimistic retries during the run.
    pub retries: u64,
    /// The server's net lies in the client's range, the server's expected balance moved by the
    /// same amount, and when the client's expectation is exact, the money the server says was
    /// erased is what the client found missing.
    pub agrees: bool,
}

impl CrossCheck {
    /// Compares the server's counters before and after with the client's verdict.
    pub fn new(
        before: &ServerStats,
        after: &ServerStats,
        stats: &Stats,
        verdict: &Verdict,
    ) -> Self {
        let server_net = (after.deposit_sum - after.withdrawal_sum)
            - (before.deposit_sum - before.withdrawal_sum);
        let client_net = stats.acknowledged_net();
        // A retry without an idempotency key may have applied its operation a second time: the
        // server then acknowledged more than the client saw, and that is this client's doing, not
        // another's. The final balance, judged against the range, is what convicts it.
        let net_min =
            client_net - stats.indeterminate_withdrawals.sum - stats.resent_withdrawals.sum;
        let net_max = client_net + stats.indeterminate_deposits.sum + stats.resent_deposits.sum;
        let lost_net = after.lost_net - before.lost_net;
        // The server's expected balance moves by exactly what it acknowledged.
        let expected_moves = after.expected_balance - before.expected_balance == server_net;
        let resent = stats.resent_deposits.count + stats.resent_withdrawals.count;
        let lost_matches = match (verdict.expected_exact(), verdict.final_balance) {
            // Money a keyless retry paid twice is missing from the client's expectation, not
            // erased by the server: the server's lost_net cannot explain it, and need not.
            (Some(exact), Some(actual)) if resent == 0 => lost_net == exact - i128::from(actual),
            _ => true,
        };
        CrossCheck {
            lost_updates: after.lost_updates.saturating_sub(before.lost_updates),
            lost_net,
            lost_removed: after.lost_removed - before.lost_removed,
            lost_added: after.lost_added - before.lost_added,
            server_net,
            client_net,
            client_net_min: net_min,
            client_net_max: net_max,
            interference: !(net_min..=net_max).contains(&server_net),
            server_expected_balance: after.expected_balance,
            client_expected_min: verdict.expected_min,
            client_expected_max: verdict.expected_max,
            server_balance: after.balance,
            retries: after.retries.saturating_sub(before.retries),
            agrees: (net_min..=net_max).contains(&server_net) && expected_moves && lost_matches,
        }
    }
}

/// The ladder of balances a correct server answers, when the run has one, or why not.
pub(crate) fn ladder(plan: &Plan, initial: i64) -> (Option<Ladder>, &'static str) {
    let Some(amount) = plan.amounts().fixed() else {
        return (
            None,
            "amounts vary, so different orders can legitimately reach the same balance",
        );
    };
    if plan.deposits_only() {
        (
            Some(Ladder {
                base: initial,
                step: amount,
            }),
            "",
        )
    } else if plan.withdrawals_only() {
        (
            Some(Ladder {
                base: initial,
                step: -amount,
            }),
            "",
        )
    } else {
        (
            None,
            "deposits and withdrawals are mixed, so balances can legitimately repeat",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::Outcome;
    use crate::plan::ops::Kind;

    fn stats(ops: &[(Kind, i64, Outcome)]) -> Stats {
        let mut stats = Stats::new(false);
        for &(kind, amount, outcome) in ops {
            stats.record_outcome(kind, amount, outcome);
        }
        stats
    }

    const UNCHECKED: Duplicates = Duplicates::NotChecked("test");
    use Kind::{Deposit, Withdraw};
    use Outcome::{Applied, Indeterminate, NotApplied};

    #[test]
    fn an_exact_expectation_that_is_met_is_consistent() {
        let stats = stats(&[
            (Deposit, 10, Applied),
            (Withdraw, 3, Applied),
            (Withdraw, 50, NotApplied),
        ]);
        let verdict = Verdict::judge(100, Some(107), &stats, UNCHECKED);
        assert_eq!(verdict.expected_exact(), Some(107));
        assert_eq!(verdict.lost_amount, Some(0));
        assert!(!verdict.overdraft);
        assert!(verdict.consistent());
    }

    #[test]
    fn money_that_vanished_is_a_positive_lost_amount_and_money_that_appeared_negative() {
        let stats = stats(&[(Deposit, 10, Applied), (Deposit, 10, Applied)]);
        let vanished = Verdict::judge(0, Some(10), &stats, UNCHECKED);
        assert_eq!(vanished.lost_amount, Some(10));
        assert!(!vanished.consistent());
        let appeared = Verdict::judge(0, Some(25), &stats, UNCHECKED);
        assert_eq!(appeared.lost_amount, Some(-5));
        assert!(!appeared.consistent());
    }

    #[test]
    fn indeterminate_requests_widen_the_expectation_into_a_range() {
        let stats = stats(&[
            (Deposit, 10, Applied),
            (Deposit, 7, Indeterminate),
            (Withdraw, 4, Indeterminate),
        ]);
        let verdict = Verdict::judge(100, Some(113), &stats, UNCHECKED);
        assert_eq!((verdict.expected_min, verdict.expected_max), (106, 117));
        assert_eq!(verdict.expected_exact(), None);
        for (final_balance, lost) in [(106, 0), (117, 0), (113, 0), (105, 1), (120, -3)] {
            let verdict = Verdict::judge(100, Some(final_balance), &stats, UNCHECKED);
            assert_eq!(verdict.lost_amount, Some(lost), "final {final_balance}");
        }
    }

    #[test]
    fn paying_out_more_than_was_ever_held_is_an_overdraft() {
        // 100 held, 5 withdrawals of 30 acknowledged, one uncertain deposit of 20.
        let mut ops = vec![(Withdraw, 30, Applied); 5];
        ops.push((Deposit, 20, Indeterminate));
        let verdict = Verdict::judge(100, Some(10), &stats(&ops), UNCHECKED);
        assert!(verdict.overdraft, "150 paid out of at most 120");
        assert!(!verdict.consistent());
        // Exactly what could have been held is not an overdraft.
        let ops = vec![(Withdraw, 30, Applied), (Deposit, 20, Indeterminate)];
        let verdict = Verdict::judge(10, Some(0), &stats(&ops), UNCHECKED);
        assert!(!verdict.overdraft);
        assert_eq!(verdict.lost_amount, Some(0));
    }

    #[test]
    fn duplicates_alone_make_a_run_inconsistent() {
        let stats = stats(&[(Deposit, 5, Applied)]);
        let checked = |duplicates| Duplicates::Checked {
            duplicates,
            unexpected: 0,
        };
        assert!(Verdict::judge(0, Some(5), &stats, checked(0)).consistent());
        let duplicated = Verdict::judge(0, Some(5), &stats, checked(1));
        assert!(!duplicated.consistent());
        // The money is right: the answers contradict each other, no update is proved lost.
        assert_eq!(
            Conclusion::of(&duplicated, None, None).0,
            Conclusion::InconsistentAnswers
        );
    }

    #[test]
    fn a_run_without_a_definite_answer_is_inconclusive_never_consistent() {
        for ops in [
            vec![],
            vec![(Deposit, 5, NotApplied), (Deposit, 5, Indeterminate)],
        ] {
            let verdict = Verdict::judge(0, Some(0), &stats(&ops), UNCHECKED);
            assert!(
                verdict.consistent(),
                "the balance alone looks right: {ops:?}"
            );
            let (conclusion, reason) = Conclusion::of(&verdict, None, None);
            assert_eq!(conclusion, Conclusion::Inconclusive, "{ops:?}");
            assert!(reason.unwrap().starts_with("no evidence"), "{ops:?}");
        }
    }

    #[test]
    fn an_unreadable_final_balance_is_a_protocol_error_unless_a_loss_is_proved_without_it() {
        let stats = stats(&[(Deposit, 5, Applied)]);
        let verdict = Verdict::judge(0, None, &stats, UNCHECKED);
        let why = Some("not a balance");
        assert_eq!(
            Conclusion::of(&verdict, None, why).0,
            Conclusion::ProtocolError
        );
        let overdrawn = self::stats(&[(Withdraw, 30, Applied)]);
        let verdict = Verdict::judge(10, None, &overdrawn, UNCHECKED);
        assert_eq!(Conclusion::of(&verdict, None, why).0, Conclusion::Lost);
    }

    #[test]
    fn the_cross_check_agrees_with_a_server_that_explains_its_drift() {
        let stats = stats(&[(Deposit, 5, Applied), (Deposit, 5, Applied)]);
        let verdict = Verdict::judge(0, Some(5), &stats, UNCHECKED);
        // A fresh account: every counter zero.
        let before = ServerStats::default();
        let after = ServerStats {
            balance: 5,
            deposit_sum: 10,
            expected_balance: 10,
            lost_updates: 1,
            lost_net: 5,
            ..before
        };
        let check = CrossCheck::new(&before, &after, &stats, &verdict);
        assert!(check.agrees, "{check:?}");
        assert_eq!(
            (check.lost_updates, check.lost_net, check.server_net),
            (1, 5, 10)
        );
        let liar = ServerStats {
            lost_net: 0,
            ..after
        };
        let lie = CrossCheck::new(&before, &liar, &stats, &verdict);
        assert!(
            !lie.agrees && !lie.interference,
            "a lie is not another client"
        );
    }

    #[test]
    fn another_client_makes_a_run_inconclusive_instead_of_lost() {
        // A correct server; this client deposited 10, another client 7 during the run.
        let stats = stats(&[(Deposit, 5, Applied), (Deposit, 5, Applied)]);
        let verdict = Verdict::judge(0, Some(17), &stats, UNCHECKED);
        assert!(!verdict.consistent(), "the balance alone looks wrong");
        // A fresh account: every counter zero.
        let before = ServerStats::default();
        let after = ServerStats {
            balance: 17,
            deposit_sum: 17,
            expected_balance: 17,
            ..before
        };
        let check = CrossCheck::new(&before, &after, &stats, &verdict);
        assert!(check.interference);
        let (conclusion, reason) = Conclusion::of(&verdict, Some(&check), None);
        assert_eq!(conclusion, Conclusion::Inconclusive);
        assert!(reason.unwrap().contains("another client"));
        // Answers off the ladder say the same without /stats.
        let off_ladder = Duplicates::Checked {
            duplicates: 1,
            unexpected: 1,
        };
        let verdict = Verdict::judge(0, Some(17), &stats, off_ladder);
        assert_eq!(
            Conclusion::of(&verdict, None, None).0,
            Conclusion::Inconclusive
        );
        // Without either sign, a wrong balance is lost updates.
        let verdict = Verdict::judge(0, Some(5), &stats, UNCHECKED);
        assert_eq!(Conclusion::of(&verdict, None, None).0, Conclusion::Lost);
    }

    #[test]
    fn without_a_final_balance_a_run_is_unknown_unless_the_answers_alone_prove_a_loss_or_contradict_each_other(
    ) {
        let stats = stats(&[
            (Deposit, 5, Applied),
            (Deposit, 5, Applied),
            (Deposit, 7, Indeterminate),
        ]);
        let verdict = Verdict::judge(100, None, &stats, UNCHECKED);
        assert_eq!((verdict.expected_min, verdict.expected_max), (110, 117));
        assert_eq!(verdict.lost_amount, None);
        assert!(!verdict.consistent() && !verdict.proves_loss());
        assert_eq!(Conclusion::of(&verdict, None, None).0, Conclusion::Unknown);
        // Two answers with the same balance contradict each other whatever the balance is now,
        // but prove no money missing.
        let duplicated = Duplicates::Checked {
            duplicates: 1,
            unexpected: 0,
        };
        let verdict = Verdict::judge(100, None, &stats, duplicated);
        assert_eq!(
            Conclusion::of(&verdict, None, None).0,
            Conclusion::InconsistentAnswers
        );
        // So does paying out more than was ever held.
        let overdrawn = self::stats(&[(Withdraw, 30, Applied)]);
        let verdict = Verdict::judge(10, None, &overdrawn, UNCHECKED);
        assert_eq!(Conclusion::of(&verdict, None, None).0, Conclusion::Lost);
    }

    #[test]
    fn the_stats_the_server_sends_are_what_the_cross_check_reads() {
        let wire = racebank::wire::Stats {
            store: "memory".into(),
            mode: "unguarded".into(),
            work: "none".into(),
            balance: 5,
            initial_balance: 0,
            deposit_count: 2,
            deposit_sum: 10,
            withdrawal_count: 0,
            withdrawal_sum: 0,
            refused_count: 0,
            expected_balance: 10,
            lost_updates: 1,
            lost_net: 5,
            lost_removed: 5,
            lost_added: 0,
            drift: -5,
            overdraft: false,
            retries: 0,
            retries_exhausted: 0,
            bank: None,
        };
        let read: ServerStats =
            serde_json::from_str(&serde_json::to_string(&wire).unwrap()).unwrap();
        assert_eq!(
            (
                read.balance,
                read.deposit_sum,
                read.lost_net,
                read.lost_removed
            ),
            (5, 10, 5, 5)
        );
    }
}
