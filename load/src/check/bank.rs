//! Jepsen's bank checker, from the answers alone, and one step further.
//!
//! [`BankCheck`] folds the events of a run (it is the engine's [`Observer`]; a test folds a
//! hand-made history the same way), in constant memory: counts, a few witnesses, and per account
//! the money acknowledged in and out. Then [`BankCheck::judge`] takes the balances read after the
//! run and names each anomaly:
//! - every successful read must sum to the total (Jepsen's `wrong-total`, with the count, the
//!   first, worst and last reads, and the lowest and highest totals), and hold no balance below
//!   zero unless the bank allows it (`negative-value`);
//! - the final balances, per account, must lie in the range the acknowledged transfers allow,
//!   transfers of unknown outcome widening it (as `run` treats them, and Jepsen's `:info`). This
//!   catches what no total can: two transfers out of the same account that read the same
//!   balances and write the same result, each losing the other's debit and credit;
//! - deadlocks (503 `deadlock`) and refusals are counted apart: they are not applied, and move no
//!   money.
//!
//! Read skew is `wrong-total` reads while the final total is right: the reads saw transfers half
//! done, the money is intact. Money created or destroyed is a final total that is not the total.
//! The server's `/stats` is printed beside the verdict by the command, never used as proof; it may
//! only make the verdict inconclusive, when it shows that another client moved money.

use serde::Serialize;

use crate::engine::bank::{Answer, Event, Observer};
use crate::plan::bank::BankOp;

/// A read, as a witness: which, when, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadWitness {
    /// The request's index.
    pub index: u64,
    /// When its answer came, in microseconds since the run started.
    pub end_us: u64,
    /// The sum of its balances.
    pub total: i128,
    /// Its balances, by account.
    pub balances: Vec<Option<i64>>,
}

/// One kind of error among the reads, as Jepsen reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadErrors {
    /// How many reads.
    pub count: u64,
    /// The earliest.
    pub first: ReadWitness,
    /// The one furthest off (for `wrong-total`: the total furthest from the expected one; for
    /// `negative-value`: the most money below zero).
    pub worst: ReadWitness,
    /// The latest.
    pub last: ReadWitness,
    /// The lowest total seen among them.
    pub lowest: i128,
    /// The highest.
    pub highest: i128,
}

impl ReadErrors {
    fn new(witness: &ReadWitness) -> Self {
        ReadErrors {
            count: 1,
            first: witness.clone(),
            worst: witness.clone(),
            last: witness.clone(),
            lowest: witness.total,
            highest: witness.total,
        }
    }

    /// Adds `other`'s reads; `badness` orders the worst.
    fn merge(&mut self, other: &ReadErrors, badness: impl Fn(&ReadWitness) -> i128) {
        self.count += other.count;
        if other.first.end_us < self.first.end_us {
            self.first = other.first.clone();
        }
        if other.last.end_us > self.last.end_us {
            self.last = other.last.clone();
        }
        if badness(&other.worst) > badness(&self.worst) {
            self.worst = other.worst.clone();
        }
        self.lowest = self.lowest.min(other.lowest);
        self.highest = self.highest.max(other.highest);
    }

    fn add(
        slot: &mut Option<ReadErrors>,
        witness: &ReadWitness,
        badness: impl Fn(&ReadWitness) -> i128,
    ) {
        match slot {
            Some(errors) => errors.merge(&ReadErrors::new(witness), badness),
            None => *slot = Some(ReadErrors::new(witness)),
        }
    }
}

/// A transfer, as a witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TransferWitness {
    /// The request's index.
    pub index: u64,
    /// When its answer came.
    pub end_us: u64,
    /// The account debited.
    pub from: usize,
    /// The account credited.
    pub to: usize,
    /// How much.
    pub amount: i64,
}

/// Transfers of one outcome: how many, how much, and the first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Transfers {
    /// How many.
    pub count: u64,
    /// Their sum.
    pub sum: i128,
    /// The earliest answered.
    pub first: Option<TransferWitness>,
}

impl Transfers {
    fn add(&mut self, witness: TransferWitness) {
        self.count += 1;
        self.sum += i128::from(witness.amount);
        if self.first.is_none_or(|first| witness.end_us < first.end_us) {
            self.first = Some(witness);
        }
    }

    fn merge(&mut self, other: &Transfers) {
        self.count += other.count;
        self.sum += other.sum;
        if let Some(witness) = other.first {
            if self.first.is_none_or(|first| witness.end_us < first.end_us) {
                self.first = Some(witness);
            }
        }
    }
}

/// The fold of a bank run's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankCheck {
    /// Opening balances by account.
    openings: Vec<i64>,
    /// What every read must sum to.
    total: i128,
    /// Whether balances below zero are allowed.
    allow_negative: bool,
    /// Successful reads.
    pub reads: u64,
    /// Reads that failed (no evidence either way).
    pub failed_reads: u64,
    /// Reads whose total is not the total.
    pub wrong_total: Option<ReadErrors>,
    /// Reads holding a balance below zero (when not allowed).
    pub negative: Option<ReadErrors>,
    /// Reads missing an account, or naming one this run does not know (Jepsen's `nil-balance`
    /// and `unexpected-key`), with the first.
    pub malformed: Option<ReadErrors>,
    /// Transfers acknowledged.
    pub applied: Transfers,
    /// Transfers refused (409).
    pub refused: Transfers,
    /// Transfers answered 503 `deadlock`.
    pub deadlocks: Transfers,
    /// Transfers rejected otherwise (not applied).
    pub rejected: Transfers,
    /// Transfers that may or may not have been applied.
    pub unknown: Transfers,
    /// Per account: acknowledged credits minus debits.
    net: Vec<i128>,
    /// Per account: debits of unknown outcome.
    maybe_out: Vec<i128>,
    /// Per account: credits of unknown outcome.
    maybe_in: Vec<i128>,
}

impl BankCheck {
    /// A check of a bank opened with `openings` (by account).
    pub fn new(openings: Vec<i64>, allow_negative: bool) -> Self {
        let accounts = openings.len();
        BankCheck {
            total: openings.iter().map(|&b| i128::from(b)).sum(),
            openings,
            allow_negative,
            reads: 0,
            failed_reads: 0,
            wrong_total: None,
            negative: None,
            malformed: None,
            applied: Transfers::default(),
            refused: Transfers::default(),
            deadlocks: Transfers::default(),
            rejected: Transfers::default(),
            unknown: Transfers::default(),
            net: vec![0; accounts],
            maybe_out: vec![0; accounts],
            maybe_in: vec![0; accounts],
        }
    }

    /// What every read must sum to.
    pub fn total(&self) -> i128 {
        self.total
    }

    fn observe_read(&mut self, event: &Event, balances: &[Option<i64>], unexpected: u32) {
        let witness = ReadWitness {
            index: event.index,
            end_us: event.end_us,
            total: balances.iter().flatten().map(|&b| i128::from(b)).sum(),
            balances: balances.to_vec(),
        };
        self.reads += 1;
        if unexpected > 0 || balances.iter().any(Option::is_none) {
            ReadErrors::add(&mut self.malformed, &witness, |_| 0);
            return;
        }
        if witness.total != self.total {
            let total = self.total;
            ReadErrors::add(&mut self.wrong_total, &witness, |w| (w.total - total).abs());
        }
        if !self.allow_negative && balances.iter().flatten().any(|&b| b < 0) {
            ReadErrors::add(&mut self.negative, &witness, below_zero);
        }
    }

    /// The judgement, given the balances read after the run (by account), or why they could not
    /// be read.
    pub fn judge(&self, last: &FinalRead) -> BankVerdict {
        let accounts = match last {
            FinalRead::Balances(balances) => Some(self.accounts(balances)),
            _ => None,
        };
        let final_total = match last {
            FinalRead::Balances(balances) if balances.iter().all(Option::is_some) => Some(
                balances
                    .iter()
                    .flatten()
                    .map(|&b| i128::from(b))
                    .sum::<i128>(),
            ),
            _ => None,
        };
        let final_negative = match last {
            FinalRead::Balances(balances) if !self.allow_negative => {
                balances.iter().flatten().any(|&b| b < 0)
            }
            _ => false,
        };
        let mut anomalies = Vec::new();
        match final_total.map(|t| t - self.total) {
            Some(drift) if drift > 0 => anomalies.push(Anomaly::MoneyCreated),
            Some(drift) if drift < 0 => anomalies.push(Anomaly::MoneyDestroyed),
            Some(_) => {
                let off = accounts.iter().flatten().any(|account| account.off != 0);
                if off {
                    anomalies.push(Anomaly::LostTransfers);
                }
                if self.wrong_total.is_some() {
                    anomalies.push(Anomaly::ReadSkew);
                }
            }
            None if self.wrong_total.is_some() => anomalies.push(Anomaly::WrongTotal),
            None => {}
        }
        if self.negative.is_some() || final_negative {
            anomalies.push(Anomaly::NegativeBalance);
        }
        if self.malformed.is_some() {
            anomalies.push(Anomaly::MalformedReads);
        }
        if self.deadlocks.count > 0 {
            anomalies.push(Anomaly::Deadlocks);
        }
        BankVerdict {
            total: self.total,
            final_total,
            accounts: accounts.unwrap_or_default(),
            anomalies,
            evidence: self.reads + self.applied.count + self.refused.count + self.deadlocks.count,
        }
    }

    /// Each account's range and final balance.
    fn accounts(&self, balances: &[Option<i64>]) -> Vec<AccountCheck> {
        (0..self.openings.len())
            .map(|position| {
                let exact = i128::from(self.openings[position]) + self.net[position];
                let min = exact - self.maybe_out[position];
                let max = exact + self.maybe_in[position];
                let actual = balances.get(position).copied().flatten();
                let off = match actual.map(i128::from) {
                    Some(actual) if actual < min => actual - min,
                    Some(actual) if actual > max => actual - max,
                    _ => 0,
                };
                AccountCheck {
                    account: position,
                    opening: self.openings[position],
                    expected_min: min,
                    expected_max: max,
                    actual,
                    off,
                }
            })
            .collect()
    }
}

/// The money below zero in a read, as a positive number (how bad a `negative-value` read is).
fn below_zero(witness: &ReadWitness) -> i128 {
    -witness
        .balances
        .iter()
        .flatten()
        .filter(|&&b| b < 0)
        .map(|&b| i128::from(b))
        .sum::<i128>()
}

impl Observer for BankCheck {
    fn observe(&mut self, event: &Event) {
        match (event.op, &event.answer) {
            (
                BankOp::Read,
                Answer::Read {
                    balances,
                    unexpected,
                },
            ) => {
                self.observe_read(event, balances, *unexpected);
            }
            (BankOp::Read, _) => self.failed_reads += 1,
            (BankOp::Transfer { from, to, amount }, answer) => {
                let witness = TransferWitness {
                    index: event.index,
                    end_us: event.end_us,
                    from,
                    to,
                    amount,
                };
                let amount = i128::from(amount);
                match answer {
                    Answer::Applied => {
                        self.net[from] -= amount;
                        self.net[to] += amount;
                        self.applied.add(witness);
                    }
                    Answer::Unknown => {
                        self.maybe_out[from] += amount;
                        self.maybe_in[to] += amount;
                        self.unknown.add(witness);
                    }
                    Answer::Refused => self.refused.add(witness),
                    Answer::Deadlock => self.deadlocks.add(witness),
                    Answer::Rejected | Answer::Read { .. } => self.rejected.add(witness),
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        let total = self.total;
        self.reads += other.reads;
        self.failed_reads += other.failed_reads;
        merge_errors(&mut self.wrong_total, other.wrong_total.as_ref(), |w| {
            (w.total - total).abs()
        });
        merge_errors(&mut self.negative, other.negative.as_ref(), below_zero);
        merge_errors(&mut self.malformed, other.malformed.as_ref(), |_| 0);
        self.applied.merge(&other.applied);
        self.refused.merge(&other.refused);
        self.deadlocks.merge(&other.deadlocks);
        self.rejected.merge(&other.rejected);
        self.unknown.merge(&other.unknown);
        for (mine, theirs) in [
            (&mut self.net, &other.net),
            (&mut self.maybe_out, &other.maybe_out),
            (&mut self.maybe_in, &other.maybe_in),
        ] {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                *mine += theirs;
            }
        }
    }
}

fn merge_errors(
    mine: &mut Option<ReadErrors>,
    theirs: Option<&ReadErrors>,
    badness: impl Fn(&ReadWitness) -> i128,
) {
    match (mine.as_mut(), theirs) {
        (Some(mine), Some(theirs)) => mine.merge(theirs, badness),
        (None, Some(theirs)) => *mine = Some(theirs.clone()),
        _ => {}
    }
}

/// The balances read after the run, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalRead {
    /// Every balance, by account.
    Balances(Vec<Option<i64>>),
    /// The server stopped answering.
    ServerLost(String),
    /// It answered with no readable balances.
    Unreadable(String),
}

/// One account after the run: the range the acknowledged transfers allow, and its balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountCheck {
    /// The account's position (its id in racebank's numbering).
    pub account: usize,
    /// Its opening balance.
    pub opening: i64,
    /// The lowest balance the answers allow.
    pub expected_min: i128,
    /// The highest.
    pub expected_max: i128,
    /// Its balance after the run.
    pub actual: Option<i64>,
    /// How far the balance lies outside the range: positive above (money appeared), negative
    /// below (money vanished), 0 inside.
    pub off: i128,
}

/// One anomaly a bank run can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anomaly {
    /// The final total is above the total.
    MoneyCreated,
    /// The final total is below the total.
    MoneyDestroyed,
    /// The final total is right, but accounts lie outside the range the acknowledged transfers
    /// allow: transfers were lost whole (debit and credit), or money moved where none was sent.
    LostTransfers,
    /// Reads with the wrong total while the final total is right: transfers seen half done.
    ReadSkew,
    /// Reads with the wrong total and no final total to tell skew from money (the server stopped
    /// answering).
    WrongTotal,
    /// A balance below zero in a bank that allows none.
    NegativeBalance,
    /// Reads missing an account or naming an unknown one.
    MalformedReads,
    /// Transfers answered 503 `deadlock` (not applied: no money moved).
    Deadlocks,
}

impl Anomaly {
    /// Whether it is about money (as opposed to reads or liveness).
    pub fn is_money(self) -> bool {
        matches!(
            self,
            Anomaly::MoneyCreated
                | Anomaly::MoneyDestroyed
                | Anomaly::LostTransfers
                | Anomaly::WrongTotal
                | Anomaly::NegativeBalance
        )
    }

    /// Its name in the verdict line.
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::MoneyCreated => "money created",
            Anomaly::MoneyDestroyed => "money destroyed",
            Anomaly::LostTransfers => "lost transfers",
            Anomaly::ReadSkew => "read skew",
            Anomaly::WrongTotal => "wrong-total reads",
            Anomaly::NegativeBalance => "negative balance",
            Anomaly::MalformedReads => "malformed reads",
            Anomaly::Deadlocks => "deadlocks",
        }
    }
}

/// What the checker concludes about the money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankVerdict {
    /// What every read must sum to.
    pub total: i128,
    /// The sum of the balances read after the run.
    pub final_total: Option<i128>,
    /// Every account's range and final balance.
    pub accounts: Vec<AccountCheck>,
    /// Each anomaly found, money first.
    pub anomalies: Vec<Anomaly>,
    /// Reads answered and transfers answered definitely: without one, nothing is proved.
    pub evidence: u64,
}

impl BankVerdict {
    /// The accounts whose final balance lies outside their range.
    pub fn off_accounts(&self) -> impl Iterator<Item = &AccountCheck> {
        self.accounts.iter().filter(|account| account.off != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: usize = 0;
    const B: usize = 1;

    fn transfer(index: u64, from: usize, to: usize, amount: i64, answer: Answer) -> Event {
        Event {
            index,
            op: BankOp::Transfer { from, to, amount },
            start_us: index * 10,
            end_us: index * 10 + 5,
            status: Some(200),
            answer,
        }
    }

    fn read(index: u64, balances: &[i64]) -> Event {
        Event {
            index,
            op: BankOp::Read,
            start_us: index * 10,
            end_us: index * 10 + 5,
            status: Some(200),
            answer: Answer::Read {
                balances: balances.iter().copied().map(Some).collect(),
                unexpected: 0,
            },
        }
    }

    fn fold(openings: &[i64], history: &[Event]) -> BankCheck {
        let mut check = BankCheck::new(openings.to_vec(), false);
        for event in history {
            check.observe(event);
        }
        check
    }

    #[test]
    fn two_same_direction_transfers_that_erase_each_other_keep_the_total_and_are_caught_per_account(
    ) {
        // Both read A=10, B=0 and both write A=9, B=1: the total stays 10, every read sums to
        // 10, and Jepsen's check passes; the acknowledgements say A must hold 8.
        let history = [
            transfer(0, A, B, 1, Answer::Applied),
            transfer(1, A, B, 1, Answer::Applied),
            read(2, &[9, 1]),
        ];
        let check = fold(&[10, 0], &history);
        assert!(check.wrong_total.is_none(), "every read sums to the total");
        let verdict = check.judge(&FinalRead::Balances(vec![Some(9), Some(1)]));
        assert_eq!(verdict.final_total, Some(10));
        assert_eq!(verdict.anomalies, vec![Anomaly::LostTransfers]);
        let off: Vec<_> = verdict.off_accounts().map(|a| (a.account, a.off)).collect();
        assert_eq!(off, vec![(A, 1), (B, -1)]);
    }

    #[test]
    fn a_consistent_history_is_called_consistent_whatever_the_unknown_transfers_did() {
        let history = [
            transfer(0, A, B, 3, Answer::Applied),
            read(1, &[7, 3]),
            transfer(2, B, A, 5, Answer::Refused),
            transfer(3, B, A, 2, Answer::Unknown),
            read(4, &[9, 1]),
        ];
        let check = fold(&[10, 0], &history);
        for last in [[7, 3], [9, 1]] {
            let verdict = check.judge(&FinalRead::Balances(last.map(Some).to_vec()));
            assert!(verdict.anomalies.is_empty(), "{last:?}: {verdict:?}");
        }
        assert_eq!(
            (
                check.applied.count,
                check.refused.count,
                check.unknown.count
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn wrong_totals_are_read_skew_when_the_final_total_is_right_and_lost_money_when_not() {
        let history = [
            read(0, &[10, 0]),
            transfer(1, A, B, 4, Answer::Applied),
            read(2, &[6, 0]),
            read(3, &[6, 1]),
            read(4, &[6, 4]),
        ];
        let check = fold(&[10, 0], &history);
        let errors = check.wrong_total.as_ref().unwrap();
        assert_eq!(errors.count, 2);
        assert_eq!(
            (errors.first.index, errors.worst.index, errors.last.index),
            (2, 2, 3)
        );
        assert_eq!((errors.lowest, errors.highest), (6, 7));
        let skew = check.judge(&FinalRead::Balances(vec![Some(6), Some(4)]));
        assert_eq!(skew.anomalies, vec![Anomaly::ReadSkew]);
        let lost = check.judge(&FinalRead::Balances(vec![Some(6), Some(1)]));
        assert_eq!(lost.anomalies, vec![Anomaly::MoneyDestroyed]);
        let gone = check.judge(&FinalRead::ServerLost("gone".into()));
        assert_eq!(gone.anomalies, vec![Anomaly::WrongTotal]);
    }

    #[test]
    fn negative_balances_and_deadlocks_are_named_and_merging_threads_keeps_the_witnesses() {
        let mut one = fold(
            &[10, 0],
            &[read(5, &[-2, 12]), transfer(1, A, B, 1, Answer::Deadlock)],
        );
        let two = fold(&[10, 0], &[read(2, &[-1, 11]), read(9, &[-5, 15])]);
        one.merge(two);
        let negative = one.negative.as_ref().unwrap();
        assert_eq!(negative.count, 3);
        assert_eq!(
            (
                negative.first.index,
                negative.worst.index,
                negative.last.index
            ),
            (2, 9, 9)
        );
        let verdict = one.judge(&FinalRead::Balances(vec![Some(10), Some(0)]));
        assert_eq!(
            verdict.anomalies,
            vec![Anomaly::NegativeBalance, Anomaly::Deadlocks]
        );
    }
}
