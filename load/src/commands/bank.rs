//! One bank run, Jepsen's bank test over HTTP: open the bank, send transfers and reads, read
//! every balance again, judge.
//!
//! With several replicas the transfers and reads go round robin over them, and everything around
//! the run (the reset, the opening read, the final read, `/stats`) goes to the first: replicas
//! share one bank only through a store, so any of them could do it, and the first is the one
//! `run` reads too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use racebank::wire::bank::BankStats;
use tokio::sync::watch;

use crate::check::bank::{BankCheck, FinalRead};
use crate::engine::bank::{self, BankJob, Line};
use crate::engine::bank_probe::{BankProbe, ReadFailure};
use crate::engine::history::History;
use crate::engine::pool::{Stop, GIVE_UP_AFTER};
use crate::engine::progress::Progress;
use crate::output::bank::{BankReport, BankSetup, CrossCheck, Sent};
use crate::plan::bank::BankLoad;
use crate::plan::load::Limit;
use crate::plan::target::Target;

/// Runs `load` and judges it; see [`bank_until`].
pub async fn bank(load: BankLoad) -> anyhow::Result<BankReport> {
    bank_until(load, std::future::pending()).await
}

/// Opens the bank, runs `load` until it is done or `interrupt` completes (requests in flight are
/// then counted as unknown), reads every balance and judges. Fails (exit 2) when the bank cannot
/// be opened as asked; anomalies are a report, not a failure.
pub async fn bank_until(
    load: BankLoad,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<BankReport> {
    let opened = open(&load).await?;
    let sent = send(&load, &opened, interrupt).await?;
    Ok(judge(&load, &opened, sent).await)
}

/// The bank, opened: the replicas, the probe (of the first), every account's id (the run's `0..N`
/// first), its opening balances, and the bank's stats right after the reset.
struct Opened {
    targets: Vec<Target>,
    probe: BankProbe,
    ids: Vec<String>,
    openings: Vec<i64>,
    stats_before: Option<BankStats>,
}

/// Checks the flags, resets the bank with the opening balances, and reads it once to make sure
/// it holds accounts `0..N` and opened as asked.
async fn open(load: &BankLoad) -> anyhow::Result<Opened> {
    let accounts = load.plan.accounts;
    anyhow::ensure!(
        !load.plan.scenario.is_rounds(),
        "the rounds scenarios run through `bank_rounds`, not the transfer loop"
    );
    anyhow::ensure!(accounts >= 2, "a bank run needs 2 accounts or more");
    let targets: Vec<Target> = load
        .targets
        .iter()
        .map(Target::new)
        .collect::<Result<_, _>>()?;
    let first = load
        .targets
        .first()
        .context("no URL to send the bank's load to")?;
    let probe = BankProbe::new(&targets[0], (&load.headers, &load.api), load.timeout)?;
    let wanted = bank::numbered_ids(accounts);
    let asked = (!load.server_openings).then(|| load.openings());
    let stats_before = probe
        .reset(&wanted, asked.as_deref())
        .await
        .context("cannot open the bank")?;
    let held = probe.opened().await?;
    probe.shared_by(&targets, &held).await?;
    let held_ids: Vec<String> = held.iter().map(|(id, _)| id.clone()).collect();
    let missing = bank::missing_ids(&wanted, &held_ids);
    if !missing.is_empty() {
        let shown: Vec<&str> = held_ids.iter().take(8).map(String::as_str).collect();
        anyhow::ensure!(
            load.api.racebank,
            "the bank at {} holds accounts {}{} after the set-up, not 0..{}: check --setup and the pointers of --read-all",
            first,
            shown.join(", "),
            if held_ids.len() > 8 { ", ..." } else { "" },
            accounts - 1,
        );
        anyhow::bail!(
            "the bank at {} holds accounts {}{}, not 0..{}: start the server with `racebank --accounts {accounts}` (or pass --accounts {})",
            first,
            shown.join(", "),
            if held_ids.len() > 8 { ", ..." } else { "" },
            accounts - 1,
            held_ids.len().max(2),
        );
    }
    // The run's accounts first, then any others the bank holds (they open at 0 and must stay so).
    let openings = asked.unwrap_or_else(|| {
        let balance_of = |id: &String| {
            held.iter()
                .find(|(held, _)| held == id)
                .map_or(0, |(_, b)| *b)
        };
        wanted.iter().map(balance_of).collect()
    });
    let mut ids = wanted;
    let mut all_openings = openings;
    for (id, balance) in &held {
        if !ids.contains(id) {
            ids.push(id.clone());
            all_openings.push(0);
        }
        let position = ids.iter().position(|known| known == id).unwrap_or(0);
        anyhow::ensure!(
            *balance == all_openings[position],
            "the bank did not open as asked: account {id} holds {balance} after the reset, not {}",
            all_openings[position]
        );
    }
    Ok(Opened {
        targets,
        probe,
        ids,
        openings: all_openings,
        stats_before,
    })
}

/// Runs the workers with the progress bar and the history file around them.
async fn send(
    load: &BankLoad,
    opened: &Opened,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<Sent<BankCheck>> {
    let history = load
        .history
        .as_deref()
        .map(History::<Line>::create)
        .transpose()?;
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let job = Arc::new(BankJob {
        targets: opened.targets.clone(),
        headers: load.headers.clone(),
        api: load.api.clone(),
        plan: load.plan,
        ids: opened.ids.clone(),
        stop: match load.limit {
            Limit::Count(count) => Stop::After(count),
            Limit::Duration(duration) => Stop::At(started + duration),
        },
        timeout: load.timeout,
        claimed: claimed.clone(),
        started,
        gave_up: AtomicBool::new(false),
    });
    let check = BankCheck::new(opened.openings.clone(), load.allow_negative);
    let progress = Progress::start(load.limit, claimed, load.progress);
    let (stop_workers, stopped) = watch::channel(false);
    let mut interrupted = false;
    let outcome = {
        let workers = bank::run(
            job.clone(),
            (load.thread_count(), load.concurrency),
            &check,
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
    let seen = outcome?;
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(history) = history {
        history.finish()?;
    }
    let stopped_early = job.gave_up.load(Ordering::Relaxed).then(|| {
        format!(
            "every connection was refused for {} s on end: no server listens any more, so the \
             remaining requests were not sent",
            GIVE_UP_AFTER.as_secs()
        )
    });
    Ok(Sent {
        seen,
        elapsed,
        interrupted,
        stopped_early,
        max_error_rate: load.max_error_rate,
    })
}

/// Reads every balance again and judges the run.
async fn judge(load: &BankLoad, opened: &Opened, sent: Sent<BankCheck>) -> BankReport {
    let last = match opened.probe.accounts().await {
        Ok(held) => {
            let ids = &opened.ids;
            let mut balances = vec![None; ids.len()];
            for (id, balance) in held {
                if let Some(position) = ids.iter().position(|known| *known == id) {
                    balances[position] = Some(balance);
                }
            }
            FinalRead::Balances(balances)
        }
        Err(ReadFailure::Gone(reason)) => FinalRead::ServerLost(reason),
        Err(ReadFailure::Unreadable(reason)) => FinalRead::Unreadable(reason),
    };
    let stats_after = match last {
        FinalRead::Balances(_) => opened.probe.stats().await,
        _ => None,
    };
    let verdict = sent.seen.observer.judge(&last);
    let cross_check = match (&opened.stats_before, &stats_after) {
        (Some(before), Some(after)) => Some(CrossCheck::new(
            before,
            after,
            &sent.seen.observer,
            &verdict,
        )),
        _ => None,
    };
    let setup = BankSetup {
        url: load.targets[0].to_string(),
        urls: load.targets.iter().map(ToString::to_string).collect(),
        accounts: load.plan.accounts,
        total: load.total,
        max_transfer: load.plan.max_transfer,
        reads: load.plan.reads,
        scenario: load.plan.scenario,
        concurrency: load.concurrency,
        threads: load.thread_count(),
        seed: load.plan.seed,
    };
    BankReport::new(setup, &sent, &last, verdict, cross_check)
}
