//! `bank --scenario write-skew` and `--scenario double-spend`: rounds of concurrent withdrawals,
//! each round opened by `POST /bank/reset`, judged round by round from the answers.
//!
//! With several replicas, withdrawal `i` of a round goes to replica `i % n`, so the two members
//! of a write-skew pair are withdrawn from on two replicas at once: a guard in one process then
//! sees only one of them. The bank is checked and reset through the first.

use std::time::Instant;

use anyhow::Context;

use crate::check::bank_rounds::{RoundWitness, RoundsAnomaly, RoundsCheck};
use crate::engine::bank_probe::{BankProbe, ReadFailure};
use crate::engine::bank_rounds::{Outcome, RoundSender};
use crate::output::bank_rounds::{RoundsReport, RoundsSetup};
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
    // The rounds speak racebank's own routes.
    let api = crate::plan::bank_api::BankApi::default();
    let probe = BankProbe::new(first, (&load.headers, &api), load.timeout)?;
    let sender = RoundSender::new(&targets, &load.headers, load.timeout)?;
    let openings = load.attack.openings();
    let (ids, balances): (Vec<String>, Vec<i64>) = openings.iter().cloned().unzip();
    check_accounts(&probe, &load.attack, &ids).await?;
    probe
        .reset(&ids, Some(&balances))
        .await
        .context("cannot open the bank")?;
    if targets.len() > 1 {
        probe.shared_by(&targets, &probe.opened().await?).await?;
    }
    if let Attack::WriteSkew { .. } = load.attack {
        check_household(&sender, &load.attack).await?;
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

/// Makes sure the bank holds every account the attack withdraws from.
async fn check_accounts(probe: &BankProbe, attack: &Attack, ids: &[String]) -> anyhow::Result<()> {
    let held = probe.accounts().await.map_err(|failure| match failure {
        ReadFailure::Gone(reason) | ReadFailure::Unreadable(reason) => anyhow::anyhow!(
            "cannot read the bank: {reason} (this scenario needs `{}`)",
            start_hint(attack)
        ),
    })?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !held.iter().any(|(held, _)| held == *id))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the bank holds no account {}: start the server with `{}` (or name its accounts with --household or --account)",
        missing.join(", "),
        start_hint(attack)
    );
    Ok(())
}

/// Makes sure the pair is a household: one member alone may withdraw more than it holds.
async fn check_household(sender: &RoundSender, attack: &Attack) -> anyhow::Result<()> {
    let withdrawals = attack.withdrawals(0);
    let Some(lone) = withdrawals.first() else {
        return Ok(());
    };
    let answer = sender.round(std::slice::from_ref(lone)).await?;
    match answer.first().map(|w| (w.outcome, w.status)) {
        Some((Outcome::Applied { .. }, _)) => Ok(()),
        Some((Outcome::Refused, _)) => anyhow::bail!(
            "{} alone may not withdraw {} (refused): {} are not a household; start the server with `{}`",
            lone.0,
            lone.1,
            attack.openings().iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>().join(" and "),
            start_hint(attack)
        ),
        other => anyhow::bail!(
            "a lone withdrawal of {} from {} was not answered as expected ({other:?}): cannot run the write-skew rounds",
            lone.1,
            lone.0
        ),
    }
}
