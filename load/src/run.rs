//! One run: read the account, send the load, read it again, judge.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::ops::Plan;
use crate::opts::{Limit, Opts};
use crate::probe;
use crate::progress::Progress;
use crate::report::{Report, Setup};
use crate::seen::Ladder;
use crate::verdict::{CrossCheck, Duplicates, Verdict};
use crate::workers::{self, Job, Stop, Target};

/// Runs the load described by `opts` against `opts.url` and judges the result.
///
/// Fails (exit 2 in the binary) when the server cannot be read before or after; a run that finds
/// lost updates is not a failure but a [`Report`] with `consistent == false`.
pub async fn run(opts: Opts) -> anyhow::Result<Report> {
    let base = opts.url.clone();
    // Refuses anything but http:// and resolves the host once, before anything is sent.
    let target = Target::new(&base)?;
    let control = probe::client(opts.timeout)?;
    let stats_before = probe::stats(&control, &base).await;
    let initial = probe::balance(&control, &base)
        .await
        .with_context(|| format!("cannot read the balance at {base} before the run"))?;

    let plan = Plan::new(opts.seed, opts.withdraw_ratio, opts.amount);
    let (ladder, unchecked_reason) = ladder(&plan, initial);
    let claimed = Arc::new(AtomicU64::new(0));
    let limit = opts.limit();
    let started = Instant::now();
    let stop = match limit {
        Limit::Count(count) => Stop::After(count),
        Limit::Duration(duration) => Stop::At(started + duration),
    };
    let job = Arc::new(Job::new(
        target,
        plan,
        stop,
        opts.timeout,
        ladder,
        claimed.clone(),
    ));
    let threads = opts.thread_count();
    let progress = Progress::start(limit, claimed, !opts.no_progress);
    let outcome = workers::run(job, threads, opts.concurrency).await;
    if let Some(progress) = progress {
        progress.finish();
    }
    let stats = outcome?;
    let elapsed = started.elapsed().as_secs_f64();

    let final_balance = probe::balance(&control, &base)
        .await
        .with_context(|| format!("cannot read the balance at {base} after the run"))?;
    let stats_after = probe::stats(&control, &base).await;

    let duplicates = Duplicates::from_seen(stats.seen.as_ref(), unchecked_reason);
    let verdict = Verdict::judge(initial, final_balance, &stats, duplicates);
    let cross_check = match (stats_before, stats_after) {
        (Some(before), Some(after)) => Some(CrossCheck::new(&before, &after, &stats, &verdict)),
        _ => None,
    };
    let setup = Setup {
        url: base.to_string(),
        seed: opts.seed,
        concurrency: opts.concurrency,
        threads,
        withdraw_ratio: opts.withdraw_ratio,
        amount: opts.amount.to_string(),
    };
    Ok(Report::new(setup, &stats, elapsed, &verdict, cross_check))
}

/// The ladder of balances a correct server answers, when the run has one, or why not.
fn ladder(plan: &Plan, initial: i64) -> (Option<Ladder>, &'static str) {
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
