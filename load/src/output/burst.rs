//! `burst`'s result: every round judged, the counts by verdict, and the smallest losing round as
//! a reproduction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::check::verdict::Conclusion;
use crate::output::table::{Column, Fields, Table};
use crate::output::{json, Render, EXIT_INCONCLUSIVE, EXIT_INCONSISTENT_ANSWERS, EXIT_LOST};

/// The width of the names in the text, colon included.
const NAMES: usize = 20;

/// One round, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "`round` is the JSON's name for the round's number"
)]
pub struct Round {
    /// Its number, from 0.
    pub round: u64,
    /// What it concludes.
    pub verdict: Conclusion,
    /// Balance before.
    pub initial_balance: i64,
    /// Balance after.
    pub final_balance: i64,
    /// Low end of the expected range.
    pub expected_min: i128,
    /// High end of the expected range.
    pub expected_max: i128,
    /// Distance of the final balance outside the range (positive: money vanished).
    pub lost_amount: i128,
    /// Answers that repeated another's balance, when checked.
    pub duplicates: Option<u64>,
    /// 2xx answers.
    pub ok: u64,
    /// 409 answers.
    pub refused: u64,
    /// Failed requests.
    pub errors: u64,
    /// Microseconds from the first last byte sent to the last.
    pub release_spread_us: u64,
}

/// A losing round, with what it sent and what came back: enough to replay it by hand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reproduction {
    /// The round.
    pub round: Round,
    /// Each distinct request (`METHOD /path body`) and how many times it was sent.
    pub requests: BTreeMap<String, u64>,
    /// One request as sent, raw.
    pub raw_request: String,
    /// Each distinct answer (`status body`) and how many came.
    pub answers: BTreeMap<String, u64>,
}

/// Every round of a burst run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstReport {
    /// The first replica's URL.
    pub url: String,
    /// Requests per round.
    pub size: usize,
    /// Rounds run.
    pub rounds: u64,
    /// Rounds whose answers prove lost updates.
    pub lost_rounds: u64,
    /// Rounds whose answers repeated a balance while no money is proved missing.
    pub inconsistent_rounds: u64,
    /// Rounds in which another client changed the account.
    pub inconclusive_rounds: u64,
    /// Rounds that kept every update.
    pub consistent_rounds: u64,
    /// Median and largest release spread, in microseconds.
    pub release_spread_us: Spread,
    /// The losing round with the fewest acknowledged requests, then the smallest loss.
    pub reproduction: Option<Reproduction>,
    /// Every round.
    pub round_results: Vec<Round>,
}

/// How far apart the last bytes went out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// The median round's.
    pub median: u64,
    /// The widest round's.
    pub max: u64,
}

impl Render for BurstReport {
    fn to_text(&self) -> String {
        let mut out = format!("Burst:\n{}", self.header().render());
        if let Some(repro) = &self.reproduction {
            out.push_str(&repro.to_text());
        }
        let _ = writeln!(out, "\nVerdict: {}", self.verdict());
        out
    }

    fn to_json(&self) -> String {
        json(self)
    }

    /// 1 when a round lost updates, 3 when one was inconclusive, else 0.
    fn exit_code(&self) -> u8 {
        if self.lost_rounds > 0 {
            EXIT_LOST
        } else if self.inconsistent_rounds > 0 {
            EXIT_INCONSISTENT_ANSWERS
        } else if self.inconclusive_rounds > 0 {
            EXIT_INCONCLUSIVE
        } else {
            0
        }
    }
}

impl BurstReport {
    /// What was released, how tightly, and the rounds by verdict.
    fn header(&self) -> Fields {
        let mut f = Fields::new(NAMES);
        f.line("Target", &self.url);
        f.line(
            "Rounds",
            &format!(
                "{} of {} requests, each on its own connection: all but the last byte sent, then the last bytes together",
                self.rounds, self.size
            ),
        );
        f.line(
            "Release spread",
            &format!(
                "median {} µs, max {} µs (first last byte to last)",
                self.release_spread_us.median, self.release_spread_us.max
            ),
        );
        let (ok, refused, errors) = self.round_results.iter().fold((0, 0, 0), |acc, r| {
            (acc.0 + r.ok, acc.1 + r.refused, acc.2 + r.errors)
        });
        f.line(
            "Answers",
            &format!("{ok} ok, {refused} refused (409), {errors} errors"),
        );
        f.line(
            "Lost updates in",
            &format!("{} of {} rounds", self.lost_rounds, self.rounds),
        );
        if self.inconsistent_rounds > 0 {
            f.line(
                "Inconsistent",
                &format!(
                    "{} rounds (answers repeated a balance; no money proved missing)",
                    self.inconsistent_rounds
                ),
            );
        }
        if self.inconclusive_rounds > 0 {
            f.line(
                "Inconclusive",
                &format!(
                    "{} rounds (answers another client must have caused)",
                    self.inconclusive_rounds
                ),
            );
        }
        f.line(
            "Consistent",
            &format!("{} of {} rounds", self.consistent_rounds, self.rounds),
        );
        f
    }

    /// The conclusion over every round.
    fn verdict(&self) -> String {
        if self.lost_rounds > 0 {
            format!(
                "LOST UPDATES: the answers prove updates were lost in {} of {} rounds",
                self.lost_rounds, self.rounds
            )
        } else if self.inconsistent_rounds > 0 {
            format!(
                "INCONSISTENT ANSWERS: in {} of {} rounds two acknowledgements reported the same balance, while no money is proved missing",
                self.inconsistent_rounds, self.rounds
            )
        } else if self.inconclusive_rounds > 0 {
            "INCONCLUSIVE: another client changed the account during some rounds".to_string()
        } else {
            "consistent: every round kept every acknowledged update".to_string()
        }
    }
}

impl Reproduction {
    /// The round, what it sent, what came back, and one request as sent.
    fn to_text(&self) -> String {
        let round = &self.round;
        let expected = if round.expected_min == round.expected_max {
            round.expected_min.to_string()
        } else {
            format!("{}..={}", round.expected_min, round.expected_max)
        };
        let mut out = format!(
            "\nSmallest losing round (round {}): balance {} -> {}, expected {expected}, lost {}{}\n",
            round.round,
            round.initial_balance,
            round.final_balance,
            round.lost_amount,
            round
                .duplicates
                .map(|d| format!(", {d} duplicate answers"))
                .unwrap_or_default()
        );
        out.push_str("  Requests, released together:\n");
        out.push_str(&counted(&self.requests).render());
        out.push_str("  Answers:\n");
        out.push_str(&counted(&self.answers).render());
        out.push_str("  One request as sent:\n");
        for raw in self.raw_request.split("\r\n") {
            let _ = writeln!(out, "    {raw}");
        }
        out
    }
}

/// `count x what` lines.
fn counted(counts: &BTreeMap<String, u64>) -> Table {
    let mut table = Table::new("    ", vec![Column::right(4), Column::left(0).after(" x ")]);
    for (what, count) in counts {
        table.row([count.to_string(), what.clone()]);
    }
    table
}
