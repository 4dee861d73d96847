//! `bank --scenario write-skew` and `--scenario double-spend`: rounds of concurrent withdrawals,
//! each round opened by the bank API's set-up (`POST /bank/reset` for racebank), judged round by
//! round from the answers.
//!
//! With several replicas, withdrawal `i` of a round goes to replica `i % n`, so the two members
//! of a write-skew pair are withdrawn from on two replicas at once: a guard in one process then
//! sees only one of them. The bank is opened and read through the first, with the API's set-up
//! and read-all routes: racebank's accounts are looked for before its reset (which opens only
//! accounts it holds, so a missing one is named with the command that makes it), another bank's
//! after its set-up (which may be what creates them).

use std::time::Instant;

use anyhow::Context;

use crate::check::bank_rounds::{RoundWitness, RoundsAnomaly, RoundsCheck};
use crate::engine::bank_probe::{BankProbe, ReadFailure};
use crate::engine::bank_rounds::{Outcome, RoundSender};
use crate::output::bank_rounds::{RoundsReport, RoundsSetup};
use crate::plan::bank_api::BankApi;
use crate::plan::bank_rounds::{Attack, RoundsLoad};
use crate::plan::target::Target;

/// Runs `load`'s rounds and judges them. Fails (exit 2) when the bank is not what the attack
/// needs (the accounts, or the household), saying how to start the server.
pub async fn bank_rounds(load: RoundsLoad) -> anyhow::Result<RoundsReport> {
    let targets: Vec<Target> = load
        .targets
        .iter()
        .map(Target::new)
        .collect::<Result<_, _>>()?;
    let first = targets.first().context("no URL to send the rounds to")?;
    let api = (&load.headers[..], &load.api);
    let probe = BankProbe::new(first, api, load.timeout)?;
    let sender = RoundSender::new(&targets, api, load.timeout)?;
    let openings = load.attack.openings();
    let (ids, balances): (Vec<String>, Vec<i64>) = openings.iter().cloned().unzip();
    open_bank(&probe, &load, &targets).await?;
    if let Attack::WriteSkew { .. } = load.attack {
        check_household(&sender, &load.attack, &load.api).await?;
    }
    let looks_for = match load.attack {
        Attack::WriteSkew { .. } => RoundsAnomaly::WriteSkew,
        Attack::DoubleSpend { .. } => RoundsAnomaly::DoubleSpend,
    };
    let mut check = RoundsCheck::new(looks_for);
    let mut latencies = Vec::new();
    let started = Instant::now();
    for round in 0..load.rounds {
        probe
            .reset(&ids, Some(&balances))
            .await
            .with_context(|| format!("cannot reset the bank before round {}", round + 1))?;
        let withdrawals = sender.round(&load.attack.withdrawals(round)).await?;
        latencies.extend(withdrawals.iter().map(|w| w.latency_us));
        check.observe(RoundWitness {
            round: round + 1,
            opening: load.attack.opening_total(),
            withdrawals,
        });
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sizes: Vec<usize> = (0..load.rounds.max(1))
        .map(|round| load.attack.withdrawals(round).len())
        .collect();
    let setup = RoundsSetup {
        url: load.targets[0].to_string(),
        urls: load.targets.iter().map(ToString::to_string).collect(),
        scenario: load.attack.name(),
        openings,
        amount: load
            .attack
            .withdrawals(0)
            .first()
            .map_or(0, |(_, amount)| *amount),
        per_round: (
            sizes.iter().copied().min().unwrap_or(0),
            sizes.iter().copied().max().unwrap_or(0),
        ),
    };
    Ok(RoundsReport::new(setup, check, &mut latencies, elapsed))
}

/// Opens the bank for the first time, making sure it holds every account the attack withdraws
/// from, and that every replica shares it.
async fn open_bank(probe: &BankProbe, load: &RoundsLoad, targets: &[Target]) -> anyhow::Result<()> {
    let (ids, balances): (Vec<String>, Vec<i64>) = load.attack.openings().into_iter().unzip();
    let judged = (&load.attack, &load.api);
    if load.api.racebank {
        check_accounts(&racebank_accounts(probe, &load.attack).await?, judged)?;
    }
    probe
        .reset(&ids, Some(&balances))
        .await
        .context("cannot open the bank")?;
    let opened = probe.opened().await?;
    if !load.api.racebank {
        check_accounts(&opened, judged)?;
    }
    if targets.len() > 1 {
        probe.shared_by(targets, &opened).await?;
    }
    Ok(())
}

/// How to start racebank so that it holds what `attack` needs.
pub(crate) fn start_hint(attack: &Attack) -> String {
    let opens: Vec<String> = attack
        .openings()
        .iter()
        .map(|(id, balance)| format!("{id}={balance}"))
        .collect();
    match attack {
        Attack::WriteSkew { members, .. } => format!(
            "racebank --accounts {} --households {}+{}",
            opens.join(","),
            members[0],
            members[1]
        ),
        Attack::DoubleSpend { .. } => format!("racebank --accounts {}", opens.join(",")),
    }
}

/// racebank's accounts before its reset; a failure to read them names the server this scenario
/// needs.
async fn racebank_accounts(
    probe: &BankProbe,
    attack: &Attack,
) -> anyhow::Result<Vec<(String, i64)>> {
    probe.accounts().await.map_err(|failure| match failure {
        ReadFailure::Gone(reason) | ReadFailure::Unreadable(reason) => anyhow::anyhow!(
            "cannot read the bank: {reason} (this scenario needs `{}`)",
            start_hint(attack)
        ),
    })
}

/// Makes sure `held`, the bank's accounts, has every account the attack withdraws from.
fn check_accounts(
    held: &[(String, i64)],
    (attack, api): (&Attack, &BankApi),
) -> anyhow::Result<()> {
    let missing: Vec<String> = (attack.openings().into_iter())
        .map(|(id, _)| id)
        .filter(|id| !held.iter().any(|(held, _)| held == id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if api.racebank {
        anyhow::bail!(
            "the bank holds no account {}: start the server with `{}` (or name its accounts with --household or --account)",
            missing.join(", "),
            start_hint(attack)
        )
    }
    anyhow::bail!(
        "the bank holds no account {} after its set-up (--setup): name its accounts with --household or --account",
        missing.join(", ")
    )
}

/// Makes sure the pair is a household: one member alone may withdraw more than it holds.
async fn check_household(
    sender: &RoundSender,
    attack: &Attack,
    api: &BankApi,
) -> anyhow::Result<()> {
    let withdrawals = attack.withdrawals(0);
    let Some(lone) = withdrawals.first() else {
        return Ok(());
    };
    let answer = sender.round(std::slice::from_ref(lone)).await?;
    let pair = (attack.openings().into_iter())
        .map(|(id, _)| id)
        .collect::<Vec<_>>()
        .join(" and ");
    let remedy = if api.racebank {
        format!("start the server with `{}`", start_hint(attack))
    } else {
        "write skew needs two accounts of which the bank guards the sum, not each balance"
            .to_string()
    };
    match answer.first().map(|w| (w.outcome, w.status)) {
        Some((Outcome::Applied { .. }, _)) => Ok(()),
        Some((Outcome::Refused, _)) => anyhow::bail!(
            "{} alone may not withdraw {} (refused): {pair} are not a household; {remedy}",
            lone.0,
            lone.1,
        ),
        other => anyhow::bail!(
            "a lone withdrawal of {} from {} was not answered as expected ({other:?}): cannot run the write-skew rounds",
            lone.1,
            lone.0
        ),
    }
}
