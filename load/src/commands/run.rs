//! One run: read the account, send the load, read it again, judge.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::watch;

use crate::check::verdict::{CrossCheck, Duplicates, Verdict};
use crate::engine::history::History;
use crate::engine::pool::{self, Job, Stop};
use crate::engine::probe::Probe;
use crate::engine::progress::Progress;
use crate::engine::stats::Reading;
use crate::output::report::{Report, Setup};
use crate::output::summary::{Ending, Summary};
use crate::plan::load::{Limit, Load};
use crate::plan::ops::Plan;
use crate::plan::target::Target;

/// Runs `load` and judges the result.
///
/// Fails (exit 2 in the binary) when the server cannot be read before; a run that finds lost
/// updates is not a failure but a [`Report`] whose verdict says so, and so is a server that
/// stopped answering during the run (the verdict is then `unknown` unless the answers alone
/// prove a loss).
pub async fn run(load: Load) -> anyhow::Result<Report> {
    run_until(load, std::future::pending()).await
}

/// Runs `load` until it is done or `interrupt` completes; then requests in flight are abandoned
/// and counted as indeterminate, and the report covers what was sent so far.
pub async fn run_until(load: Load, interrupt: impl Future<Output = ()>) -> anyhow::Result<Report> {
    anyhow::ensure!(!load.targets.is_empty(), "no --url to send the load to");
    // Refuses anything but http:// and resolves every host once, before anything is sent.
    let targets = load
        .targets
        .iter()
        .map(Target::new)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &targets[0];
    let probe = Probe::new(first, &load.api, load.timeout)?;
    let stats_before = probe.stats().await;
    let initial = probe
        .balance()
        .await
        .context("cannot read the balance before the run")?;

    let plan = Plan::new(load.seed, load.withdraw_ratio, load.amount);
    let (ladder, unchecked_reason) = match crate::check::verdict::ladder(&plan, initial) {
        // A retry without a key may apply an operation twice: a correct answer can then sit
        // past the ladder's top, and the final balance is what judges the run.
        _ if load.retries > 0 && !load.sends_keys() => (
            None,
            "retries without idempotency keys may apply an operation twice",
        ),
        checked => checked,
    };
    let history = load.history.as_deref().map(History::create).transpose()?;
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = match load.limit {
        Limit::Count(count) => Stop::After(count),
        Limit::Duration(duration) => Stop::At(started + duration),
    };
    let job = Arc::new(Job {
        targets: targets.clone(),
        api: load.api.clone(),
        plan,
        stop,
        timeout: load.timeout,
        reading: Reading {
            pointer: load.api.pointer.clone(),
            ladder,
        },
        claimed: claimed.clone(),
        started,
        retries: load.retries,
        // A key names the run too, so a second run against the same server is not a replay.
        keys: load.sends_keys().then(run_id),
        gave_up: AtomicBool::new(false),
    });
    let threads = load.thread_count();
    let progress = Progress::start(load.limit, claimed, load.progress);
    let (stop_workers, stopped) = watch::channel(false);
    let mut interrupted = false;
    let outcome = {
        let workers = pool::run(
            job.clone(),
            threads,
            load.concurrency,
            history.as_ref(),
            stopped,
        );
        tokio::pin!(workers);
        tokio::select! {
            outcome = &mut workers => outcome,
            () = interrupt => {
                interrupted = true;
                let _ = stop_workers.send(true);
                workers.await
            }
        }
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    let mut stats = outcome?;
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(history) = history {
        history.finish()?;
    }

    // A server that died during the run (killed, crashed, stopped) cannot be read, but what it
    // acknowledged stands: the report says what is known instead of discarding it.
    let (final_balance, server_lost) = match probe.balance_after().await {
        Ok(balance) => (Some(balance), None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    let stats_after = match final_balance {
        Some(_) => probe.stats().await,
        None => None,
    };

    let answers_carry_balance = !stats.forgive_missing_balances();
    let unchecked_reason = if answers_carry_balance {
        unchecked_reason
    } else {
        "the acknowledgements carry no balance"
    };
    let duplicates = Duplicates::from_seen(stats.seen.as_ref(), unchecked_reason);
    let verdict = Verdict::judge(initial, final_balance, &stats, duplicates);
    let cross_check = match (stats_before, stats_after) {
        (Some(before), Some(after)) => Some(CrossCheck::new(&before, &after, &stats, &verdict)),
        _ => None,
    };
    let setup = Setup {
        url: load.targets[0].to_string(),
        urls: load.targets.iter().map(ToString::to_string).collect(),
        seed: load.seed,
        concurrency: load.concurrency,
        threads,
        withdraw_ratio: load.withdraw_ratio,
        amount: load.amount.to_string(),
    };
    let stopped_early = job.gave_up.load(Ordering::Relaxed).then(|| {
        format!(
            "every connection was refused for {} s on end: no server listens any more, so the \
             remaining requests were not sent",
            pool::GIVE_UP_AFTER.as_secs()
        )
    });
    let ending = Ending {
        answers_carry_balance,
        max_error_rate: load.max_error_rate,
        interrupted,
        server_lost,
        stopped_early,
    };
    Ok(Report {
        setup,
        summary: Summary::new(&stats, elapsed, &verdict, cross_check, ending),
    })
}

/// An id for this run, different from any earlier run's: the clock in nanoseconds, and this
/// process's id for two runs started in the same nanosecond by different processes.
fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 48)
}
