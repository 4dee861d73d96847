//! The bank checker's cost per operation: builds a history of N operations in memory (Jepsen's
//! mix on 8 accounts, half reads, every read of a consistent bank but one in 100 off by one), then
//! folds it with [`BankCheck`] and judges it, as `bank` does, and prints the time per operation and
//! the memory before and after.
//!
//! `cargo run --release -p racebank-load --example bank_checker -- 1000000` (one N per process, so
//! that the peak is this N's); `python3 load/bench/bench.py checker` runs 10k, 100k and 1M.

use std::time::Instant;

use racebank_load::{
    Answer, BankCheck, BankOp, BankPlan, BankScenario, Event, FinalRead, Observer,
};

/// `VmRSS` and `VmHWM` (peak) of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn history(count: u64, plan: &BankPlan) -> Vec<Event> {
    let mut balances = vec![0i64; plan.accounts];
    balances[0] = 100;
    (0..count)
        .map(|index| {
            let op = plan.op(index);
            let answer = match op {
                BankOp::Read => {
                    let mut read: Vec<Option<i64>> = balances.iter().copied().map(Some).collect();
                    if index % 100 == 0 {
                        read[0] = read[0].map(|b| b + 1);
                    }
                    Answer::Read {
                        balances: read,
                        unexpected: 0,
                    }
                }
                BankOp::Transfer { from, to, amount } if balances[from] >= amount => {
                    balances[from] -= amount;
                    balances[to] += amount;
                    Answer::Applied
                }
                BankOp::Transfer { .. } => Answer::Refused,
            };
            Event {
                index,
                op,
                start_us: index * 10,
                end_us: index * 10 + 5,
                status: Some(200),
                answer,
            }
        })
        .collect()
}

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let plan = BankPlan {
        seed: 1,
        accounts: 8,
        max_transfer: 5,
        reads: 0.5,
        scenario: BankScenario::Transfers,
    };
    let events = history(count, &plan);
    let (held, _) = memory_kib();
    let mut openings = vec![0; plan.accounts];
    openings[0] = 100;
    let started = Instant::now();
    let mut check = BankCheck::new(openings, false);
    for event in &events {
        check.observe(event);
    }
    let last = events
        .iter()
        .rev()
        .find_map(|event| match &event.answer {
            Answer::Read { balances, .. } => Some(balances.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let verdict = check.judge(&FinalRead::Balances(last));
    let elapsed = started.elapsed();
    let (after, peak) = memory_kib();
    #[allow(clippy::cast_precision_loss, reason = "a count far below 2^53")]
    let per_op_ns = elapsed.as_nanos() as f64 / count as f64;
    println!(
        "{{\"operations\": {count}, \"check_ms\": {:.1}, \"ns_per_op\": {per_op_ns:.1}, \"rss_with_history_kib\": {held}, \"rss_after_check_kib\": {after}, \"peak_kib\": {peak}, \"wrong_total\": {}, \"anomalies\": {}}}",
        elapsed.as_secs_f64() * 1000.0,
        check.wrong_total.as_ref().map_or(0, |w| w.count),
        verdict.anomalies.len()
    );
}
