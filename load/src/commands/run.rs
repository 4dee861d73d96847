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
use crate::engine::probe::{Probe, ServerStats, Unreadable};
use crate::engine::progress::Progress;
use crate::engine::stats::{Reading, Stats};
use crate::output::report::{Report, Setup};
use crate::output::summary::{Ending, Summary};
use crate::plan::load::{Limit, Load};
use crate::plan::ops::Plan;

/// Runs `load` and judges the result.
///
/// Fails (exit 2 in the binary) when the server cannot be read before; a run that finds lost
/// updates is not a failure but a `Report` whose verdict says so, and so is a server that
/// stopped answering during the run (the verdict is then `unknown` unless the answers alone
/// prove a loss).
pub async fn run(load: Load) -> anyhow::Result<Report> {
    run_until(load, std::future::pending()).await
}

/// Runs `load` until it is done or `interrupt` completes; then requests in flight are abandoned
/// and counted as indeterminate, and the report covers what was sent so far.
pub async fn run_until(load: Load, interrupt: impl Future<Output = ()>) -> anyhow::Result<Report> {
    let mut prepared = prepare(&load).await?;
    let sent = send(&load, &mut prepared, interrupt).await?;
    Ok(judge(&load, prepared, sent).await)
}

/// What is known before the first request: the replicas, the first one's balance and `/stats`,
/// and the job the workers share.
struct Prepared {
    probe: Probe,
    stats_before: Option<ServerStats>,
    initial: i64,
    unchecked_reason: &'static str,
    history: Option<History>,
    job: Arc<Job>,
    claimed: Arc<AtomicU64>,
    threads: usize,
}

/// What the workers did.
struct Sent {
    stats: Stats,
    elapsed: f64,
    interrupted: bool,
}

/// Resolves the replicas, reads the account, and lays out the job.
async fn prepare(load: &Load) -> anyhow::Result<Prepared> {
    let targets = load.resolve_targets()?;
    let probe = Probe::new(&targets[0], &load.api, load.timeout)?;
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
        targets,
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
    Ok(Prepared {
        probe,
        stats_before,
        initial,
        unchecked_reason,
        history,
        job,
        claimed,
        threads: load.thread_count(),
    })
}

/// Runs the workers until the job is done or `interrupt` completes, with the progress bar and
/// the history file around them.
async fn send(
    load: &Load,
    prepared: &mut Prepared,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<Sent> {
    let history = prepared.history.take();
    let progress = Progress::start(load.limit, prepared.claimed.clone(), load.progress);
    let (stop_workers, stopped) = watch::channel(false);
    let mut interrupted = false;
    let outcome = {
        let workers = pool::run(
            prepared.job.clone(),
            prepared.threads,
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
    let stats = outcome?;
    let elapsed = prepared.job.started.elapsed().as_secs_f64();
    if let Some(history) = history {
        history.finish()?;
    }
    Ok(Sent {
        stats,
        elapsed,
        interrupted,
    })
}

/// Reads the account again and judges what the workers saw against it.
async fn judge(load: &Load, prepared: Prepared, mut sent: Sent) -> Report {
    let Prepared { probe, job, .. } = &prepared;
    let stats = &mut sent.stats;
    // A server that died during the run (killed, crashed, stopped) cannot be read, but what it
    // acknowledged stands: the report says what is known instead of discarding it.
    // An answer that holds no balance is the server breaking the protocol, not stopping.
    let (final_balance, server_lost, protocol_error) = match probe.balance_after().await {
        Ok(balance) => (Some(balance), None, None),
        Err(error) if error.is::<Unreadable>() => (None, None, Some(format!("{error:#}"))),
        Err(error) => (None, Some(format!("{error:#}")), None),
    };
    let stats_after = match final_balance {
        Some(_) => probe.stats().await,
        None => None,
    };

    let answers_carry_balance = !stats.forgive_missing_balances();
    let unchecked_reason = if answers_carry_balance {
        prepared.unchecked_reason
    } else {
        "the acknowledgements carry no balance"
    };
    let duplicates = Duplicates::from_seen(stats.seen.as_ref(), unchecked_reason);
    let verdict = Verdict::judge(prepared.initial, final_balance, stats, duplicates);
    let cross_check = match (prepared.stats_before, stats_after) {
        (Some(before), Some(after)) => Some(CrossCheck::new(&before, &after, stats, &verdict)),
        _ => None,
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
        interrupted: sent.interrupted,
        server_lost,
        protocol_error,
        stopped_early,
    };
    Report {
        setup: setup(load, prepared.threads),
        summary: Summary::new(stats, sent.elapsed, &verdict, cross_check, ending),
    }
}

/// What was asked for, for the report's header.
fn setup(load: &Load, threads: usize) -> Setup {
    Setup {
        url: load.targets[0].to_string(),
        urls: load.targets.iter().map(ToString::to_string).collect(),
        seed: load.seed,
        concurrency: load.concurrency,
        threads,
        withdraw_ratio: load.withdraw_ratio,
        amount: load.amount.to_string(),
    }
}

/// An id for this run, different from any earlier run's: the clock in nanoseconds, and this
/// process's id for two runs started in the same nanosecond by different processes.
fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            // The low 64 bits: they differ from one run to the next, which is all an id needs.
            u64::try_from(elapsed.as_nanos() & u128::from(u64::MAX)).unwrap_or(0)
        });
    nanos ^ (u64::from(std::process::id()) << 48)
}
