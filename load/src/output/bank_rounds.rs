//! The result of `bank --scenario write-skew|double-spend`: one [`RoundsReport`], as aligned text
//! or JSON, ending with one verdict line that names the anomaly with its witness rounds.

use serde::Serialize;

use crate::check::bank_rounds::{RoundWitness, RoundsAnomaly, RoundsCheck};
use crate::engine::bank_rounds::Outcome;
use crate::output::bank::BankConclusion;
use crate::output::table::Fields;
use crate::output::{json, Render, EXIT_INCONCLUSIVE, EXIT_LOST};

/// The width of the names in the text, colon included.
const NAMES: usize = 14;

/// What a rounds run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundsSetup {
    /// The server's base URL (the first replica's).
    pub url: String,
    /// Every replica's URL: withdrawal `i` of a round goes to replica `i % n`.
    pub urls: Vec<String>,
    /// `write-skew` or `double-spend`.
    pub scenario: &'static str,
    /// The accounts withdrawn from, and what each opens every round with.
    pub openings: Vec<(String, i64)>,
    /// Each withdrawal's amount.
    pub amount: i64,
    /// How many withdrawals a round sends: the fewest and the most.
    pub per_round: (usize, usize),
}

/// A rounds run, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundsReport {
    /// What was asked.
    pub setup: RoundsSetup,
    /// The rounds, judged.
    pub check: RoundsCheck,
    /// Withdrawals per second, over the rounds (resets included).
    pub rps: f64,
    /// The 99th percentile of the withdrawals' latency, in milliseconds.
    pub p99_ms: f64,
    /// The conclusion: `consistent`, `lost` (the anomaly) or `inconclusive`.
    pub verdict: BankConclusion,
}

impl RoundsReport {
    /// The report of `check`, given the withdrawals' latencies and the run's wall time.
    pub(crate) fn new(
        setup: RoundsSetup,
        check: RoundsCheck,
        latencies_us: &mut [u64],
        elapsed: f64,
    ) -> Self {
        latencies_us.sort_unstable();
        let p99 = latencies_us
            .get((latencies_us.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or(0);
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let (rps, p99_ms) = (
            (check.applied + check.refused + check.failed) as f64 / elapsed.max(1e-9),
            p99 as f64 / 1000.0,
        );
        let verdict = if check.anomalies > 0 {
            BankConclusion::Lost
        } else if check.held == 0 {
            BankConclusion::Inconclusive
        } else {
            BankConclusion::Consistent
        };
        RoundsReport {
            setup,
            check,
            rps,
            p99_ms,
            verdict,
        }
    }

    /// One line: the anomaly and its witnesses, or that every round held.
    pub fn verdict_line(&self) -> String {
        let check = &self.check;
        let name = check.looks_for.name();
        match self.verdict {
            BankConclusion::Lost => format!(
                "NOT CONSISTENT: {name} in {} of {} rounds: {} (first: {}; worst: {})",
                check.anomalies,
                check.rounds,
                self.what_went_wrong(),
                witness(check.looks_for, check.first.as_ref()),
                witness(check.looks_for, check.worst.as_ref()),
            ),
            BankConclusion::Consistent => format!(
                "CONSISTENT: no {name} in {} rounds ({} held{})",
                check.rounds,
                check.held,
                match check.unjudged {
                    0 => String::new(),
                    n => format!(", {n} with an answer of unknown outcome"),
                }
            ),
            _ => format!(
                "INCONCLUSIVE: no round of {} was answered in full, so none proves anything",
                check.rounds
            ),
        }
    }

    fn what_went_wrong(&self) -> String {
        let amount = self.setup.amount;
        match self.check.looks_for {
            RoundsAnomaly::WriteSkew => format!(
                "both withdrawals of {amount} answered 200 and left the household below zero"
            ),
            RoundsAnomaly::DoubleSpend => format!(
                "more than one withdrawal of {amount} answered 200 from an account holding {}",
                self.setup.openings.first().map_or(0, |(_, b)| *b)
            ),
        }
    }
}

/// A witness round in a few words.
fn witness(looks_for: RoundsAnomaly, round: Option<&RoundWitness>) -> String {
    let Some(round) = round else {
        return "none".to_string();
    };
    match looks_for {
        RoundsAnomaly::WriteSkew => {
            let sides: Vec<String> = round
                .withdrawals
                .iter()
                .filter_map(|w| match w.outcome {
                    Outcome::Applied {
                        balance: Some(balance),
                    } => Some(format!("{} {balance}", w.account)),
                    Outcome::Applied { balance: None } => Some(format!("{} ?", w.account)),
                    _ => None,
                })
                .collect();
            let by = match round.answered_total() {
                Some(_) => "",
                None => " by the amounts",
            };
            format!(
                "round {}, {}: household {}{by}",
                round.round,
                sides.join(" and "),
                round.household()
            )
        }
        RoundsAnomaly::DoubleSpend => format!(
            "round {}, {} of {} answered 200",
            round.round,
            round.applied(),
            round.withdrawals.len()
        ),
    }
}

impl Render for RoundsReport {
    fn to_text(&self) -> String {
        let setup = &self.setup;
        let check = &self.check;
        let mut fields = Fields::new(NAMES);
        let opens: Vec<String> = setup
            .openings
            .iter()
            .map(|(id, b)| format!("{id}={b}"))
            .collect();
        fields.line("scenario", setup.scenario);
        fields.line("url", &setup.urls.join(", "));
        if setup.urls.len() > 1 {
            fields.line(
                "replicas",
                &format!(
                    "{}: withdrawal i of a round to replica i mod {}; resets on the first",
                    setup.urls.len(),
                    setup.urls.len()
                ),
            );
        }
        fields.line(
            "each round",
            &format!(
                "reset to {}, then {} withdrawal(s) of {} at once",
                opens.join(","),
                match setup.per_round {
                    (low, high) if low == high => low.to_string(),
                    (low, high) => format!("{low} to {high}"),
                },
                setup.amount
            ),
        );
        fields.line(
            "rounds",
            &format!(
                "{} ({} with {}, {} held, {} unjudged)",
                check.rounds,
                check.anomalies,
                check.looks_for.name(),
                check.held,
                check.unjudged
            ),
        );
        fields.line(
            "withdrawals",
            &format!(
                "{} answered 200, {} refused, {} failed",
                check.applied, check.refused, check.failed
            ),
        );
        fields.line(
            "rate",
            &format!("{:.0} withdrawals/s, p99 {:.2} ms", self.rps, self.p99_ms),
        );
        format!("{}\n{}\n", fields.render(), self.verdict_line())
    }

    fn to_json(&self) -> String {
        json(self)
    }

    fn exit_code(&self) -> u8 {
        match self.verdict {
            BankConclusion::Consistent => 0,
            BankConclusion::Lost => EXIT_LOST,
            _ => EXIT_INCONCLUSIVE,
        }
    }
}
