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
use std::time::Duration;

use anyhow::Context;

use crate::check::verdict::{Conclusion, Duplicates, Verdict};
use crate::engine::connection::{Exchange, MAX_BODY};
use crate::engine::probe::Probe;
use crate::engine::raw;
use crate::engine::requests::Requests;
use crate::engine::stats::{Reading, Stats};
use crate::output::burst::{BurstReport, Reproduction, Round, Spread};
use crate::plan::load::Load;
use crate::plan::ops::{Op, Plan};
use crate::plan::target::{replica_of, Target};

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

/// Runs every round of `burst` and judges each.
pub async fn burst(burst: Burst) -> anyhow::Result<BurstReport> {
    let load = &burst.load;
    let targets = load.resolve_targets()?;
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
        inconsistent_rounds: count(Conclusion::InconsistentAnswers),
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
            (plan.op(index), replica_of(index, replicas))
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
    let (conclusion, _) = Conclusion::of(&verdict, None, None);
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
        release_spread_us: u64::try_from(spread.as_micros()).unwrap_or(u64::MAX),
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
            Exchange::Answer { status, body, .. } => {
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
