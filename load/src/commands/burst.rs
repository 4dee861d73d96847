//! `racebank-load burst`: release N requests at the same instant, round after round, and judge
//! each round on its own.
//!
//! A handler without `--work rendezvous` has a narrow window between its read and its write, and a
//! steady stream of requests rarely puts two of them in it. Practitioners release them together
//! instead (Burp's Turbo Intruder): each round opens N connections, writes every request but its
//! last byte, waits until all are written and the server has read them, then sends the N last
//! bytes back to back. The server can start none of them before the release, and all of them
//! within microseconds of it. Then the round reads the balance and is judged like a run (expected
//! range, overdraft, duplicates); the smallest losing round is kept as a reproduction.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::check::verdict::{Conclusion, Duplicates, Verdict};
use crate::engine::connection::{Exchange, MAX_BODY};
use crate::engine::probe::Probe;
use crate::engine::raw;
use crate::engine::requests::Requests;
use crate::engine::stats::{Reading, Stats};
use crate::output::{EXIT_INCONCLUSIVE, EXIT_LOST};
use crate::plan::load::Load;
use crate::plan::ops::{Op, Plan};
use crate::plan::target::Target;

/// How long the server gets to read the withheld requests before the release. Long enough for
/// it to parse N heads on a loaded machine, short next to a round.
const SETTLE: Duration = Duration::from_millis(20);

/// The most bytes of an answer shown in a reproduction.
const SHOWN: usize = 200;

/// What to release, how often, and where: `load` gives the targets, the API, the operations and
/// the timeout; its concurrency and limit are ignored.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Targets, API, operations, timeout.
    pub load: Load,
    /// Requests released together in each round.
    pub size: usize,
    /// Rounds.
    pub rounds: u64,
}

/// One round, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Runs every round of `burst` and judges each.
pub async fn burst(burst: Burst) -> anyhow::Result<BurstReport> {
    let load = &burst.load;
    anyhow::ensure!(!load.targets.is_empty(), "no --url to send the bursts to");
    let targets = load
        .targets
        .iter()
        .map(Target::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let probe = Probe::new(&targets[0], &load.api, load.timeout)?;
    let requests = Requests::new(&targets, &load.api, load.amount)?;
    let plan = Plan::new(load.seed, load.withdraw_ratio, load.amount);
    let mut results = Vec::new();
    let mut reproduction: Option<Reproduction> = None;
    for round in 0..burst.rounds {
        let (result, answers) = one_round(&burst, &targets, &probe, &requests, &plan, round)
            .await
            .with_context(|| format!("round {round}"))?;
        let smaller = |best: &Reproduction| {
            (result.ok, result.lost_amount.abs()) < (best.round.ok, best.round.lost_amount.abs())
        };
        if result.verdict == Conclusion::Lost && reproduction.as_ref().is_none_or(smaller) {
            reproduction = Some(reproduce(&burst, &requests, &plan, &result, answers));
        }
        results.push(result);
    }
    let count = |verdict| results.iter().filter(|r| r.verdict == verdict).count() as u64;
    let mut spreads: Vec<u64> = results.iter().map(|r| r.release_spread_us).collect();
    spreads.sort_unstable();
    Ok(BurstReport {
        url: load.targets[0].to_string(),
        size: burst.size,
        rounds: burst.rounds,
        lost_rounds: count(Conclusion::Lost),
        inconclusive_rounds: count(Conclusion::Inconclusive),
        consistent_rounds: count(Conclusion::Consistent),
        release_spread_us: Spread {
            median: spreads.get(spreads.len() / 2).copied().unwrap_or(0),
            max: spreads.last().copied().unwrap_or(0),
        },
        reproduction,
        round_results: results,
    })
}

/// The operation, its index and replica, of request `i` of `round`.
fn ops(burst: &Burst, plan: &Plan, round: u64, replicas: usize) -> Vec<(Op, usize)> {
    (0..burst.size as u64)
        .map(|i| {
            let index = round * burst.size as u64 + i;
            (plan.op(index), (index % replicas as u64) as usize)
        })
        .collect()
}

/// One round: withhold, release, read, judge. Returns the round and its answers.
async fn one_round(
    burst: &Burst,
    targets: &[Target],
    probe: &Probe,
    requests: &Requests,
    plan: &Plan,
    round: u64,
) -> anyhow::Result<(Round, Vec<Exchange>)> {
    let load = &burst.load;
    let initial = probe.balance().await?;
    let ops = ops(burst, plan, round, targets.len());
    let raws: Vec<Vec<u8>> = ops.iter().map(|&(op, r)| requests.raw(op, r)).collect();

    // Open every connection and send all but the last byte of each request.
    let mut streams = Vec::with_capacity(ops.len());
    for ((_, replica), raw) in ops.iter().zip(&raws) {
        streams.push(raw::withhold(&targets[*replica], raw, load.timeout).await);
    }
    tokio::time::sleep(SETTLE).await;
    let spread = raw::release(&mut streams, &raws).await;
    let answers = raw::read_answers(streams, load.timeout).await;
    let final_balance = probe.balance().await?;

    let (ladder, unchecked) = crate::check::verdict::ladder(plan, initial);
    let reading = Reading {
        pointer: load.api.pointer.clone(),
        ladder,
    };
    let mut stats = Stats::new(reading.ladder.is_some());
    for (&(op, _), answer) in ops.iter().zip(&answers) {
        stats.record(&reading, op, answer.clone(), spread, || burst.size as u64);
    }
    let unchecked = if stats.forgive_missing_balances() {
        "the acknowledgements carry no balance"
    } else {
        unchecked
    };
    let duplicates = Duplicates::from_seen(stats.seen.as_ref(), unchecked);
    let verdict = Verdict::judge(initial, Some(final_balance), &stats, duplicates);
    let (conclusion, _) = Conclusion::of(&verdict, None);
    let round = Round {
        round,
        verdict: conclusion,
        initial_balance: initial,
        final_balance,
        expected_min: verdict.expected_min,
        expected_max: verdict.expected_max,
        // Judged with the final balance read above, so the amount is known.
        lost_amount: verdict.lost_amount.unwrap_or(0),
        duplicates: verdict.duplicates.count(),
        ok: stats.ok,
        refused: stats.refused,
        errors: stats.errors.total(),
        release_spread_us: spread.as_micros() as u64,
    };
    Ok((round, answers))
}

/// What a losing round sent and got.
fn reproduce(
    burst: &Burst,
    requests: &Requests,
    plan: &Plan,
    round: &Round,
    answers: Vec<Exchange>,
) -> Reproduction {
    let ops = ops(burst, plan, round.round, requests.replicas());
    let mut sent = BTreeMap::new();
    for &(op, replica) in &ops {
        let request = requests.build(op, replica, None);
        let body = String::from_utf8_lossy(&requests.raw(op, replica))
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_string();
        *sent
            .entry(format!("{} {} {body}", request.method(), request.uri()))
            .or_insert(0) += 1;
    }
    let mut got = BTreeMap::new();
    for answer in answers {
        let text = match answer {
            Exchange::Answer { status, body } => {
                let body = body.unwrap_or_default();
                let shown = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]).to_string();
                format!("{} {shown}", status.as_u16())
            }
            Exchange::Oversized { status } => {
                format!(
                    "{} (a body over {} KiB, not read)",
                    status.as_u16(),
                    MAX_BODY / 1024
                )
            }
            Exchange::NotSent => "not sent".to_string(),
            Exchange::TimedOut => "timed out".to_string(),
            Exchange::Broken => "connection broken".to_string(),
        };
        *got.entry(text).or_insert(0) += 1;
    }
    let (op, replica) = ops[0];
    Reproduction {
        round: round.clone(),
        requests: sent,
        raw_request: String::from_utf8_lossy(&requests.raw(op, replica)).to_string(),
        answers: got,
    }
}

impl BurstReport {
    /// 1 when a round lost updates, 3 when one was inconclusive, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.lost_rounds > 0 {
            EXIT_LOST
        } else if self.inconclusive_rounds > 0 {
            EXIT_INCONCLUSIVE
        } else {
            0
        }
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }

    /// The report as aligned text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, name: &str, value: &str| {
            let _ = writeln!(out, "  {:<20} {value}", format!("{name}:"));
        };
        let _ = writeln!(out, "Burst:");
        line(&mut out, "Target", &self.url);
        line(
            &mut out,
            "Rounds",
            &format!(
                "{} of {} requests, each on its own connection: all but the last byte sent, then the last bytes together",
                self.rounds, self.size
            ),
        );
        line(
            &mut out,
            "Release spread",
            &format!(
                "median {} µs, max {} µs (first last byte to last)",
                self.release_spread_us.median, self.release_spread_us.max
            ),
        );
        let (ok, refused, errors) = self.round_results.iter().fold((0, 0, 0), |acc, r| {
            (acc.0 + r.ok, acc.1 + r.refused, acc.2 + r.errors)
        });
        line(
            &mut out,
            "Answers",
            &format!("{ok} ok, {refused} refused (409), {errors} errors"),
        );
        line(
            &mut out,
            "Lost updates in",
            &format!("{} of {} rounds", self.lost_rounds, self.rounds),
        );
        if self.inconclusive_rounds > 0 {
            line(
                &mut out,
                "Inconclusive",
                &format!(
                    "{} rounds (answers another client must have caused)",
                    self.inconclusive_rounds
                ),
            );
        }
        line(
            &mut out,
            "Consistent",
            &format!("{} of {} rounds", self.consistent_rounds, self.rounds),
        );
        if let Some(repro) = &self.reproduction {
            let round = &repro.round;
            let expected = if round.expected_min == round.expected_max {
                round.expected_min.to_string()
            } else {
                format!("{}..={}", round.expected_min, round.expected_max)
            };
            let _ = writeln!(
                out,
                "\nSmallest losing round (round {}): balance {} -> {}, expected {expected}, lost {}{}",
                round.round,
                round.initial_balance,
                round.final_balance,
                round.lost_amount,
                round
                    .duplicates
                    .map(|d| format!(", {d} duplicate answers"))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "  Requests, released together:");
            for (request, count) in &repro.requests {
                let _ = writeln!(out, "    {count:>4} x {request}");
            }
            let _ = writeln!(out, "  Answers:");
            for (answer, count) in &repro.answers {
                let _ = writeln!(out, "    {count:>4} x {answer}");
            }
            let _ = writeln!(out, "  One request as sent:");
            for raw in repro.raw_request.split("\r\n") {
                let _ = writeln!(out, "    {raw}");
            }
        }
        let verdict = if self.lost_rounds > 0 {
            format!(
                "LOST UPDATES: the answers prove updates were lost in {} of {} rounds",
                self.lost_rounds, self.rounds
            )
        } else if self.inconclusive_rounds > 0 {
            "INCONCLUSIVE: another client changed the account during some rounds".to_string()
        } else {
            "consistent: every round kept every acknowledged update".to_string()
        };
        let _ = writeln!(out, "\nVerdict: {verdict}");
        out
    }
}
