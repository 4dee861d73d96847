//! `racebank-load sweep --scenario bank`: Jepsen's bank at many concurrencies, modes and work
//! windows, one ordinary [`bank`] run per point, written as CSV, JSON and charts by the same
//! output layer as a sweep of deposits.
//!
//! A `bank` run answers "did this server create or destroy money?"; a sweep of them answers "how
//! does that grow with concurrency, and what does each guard cost in transfers per second?". Each
//! point is exactly a `bank` run ([`BankLoad`], judged by the same checker), so it means what a run
//! means.
//!
//! Where the points run:
//! - in-process (the default): a fresh server per point opened with a bank of accounts `0..N`
//!   (as `racebank --accounts N`), in each mode and work window; only modes the store's bank runs
//!   are accepted ([`Mode::check_bank_store`], refused before the first point);
//! - `--url`: a bank already running; only the concurrency varies. Each `bank` run resets the bank
//!   itself (`POST /bank/reset` with the whole total in account 0) before it sends, so no point
//!   inherits another's balances.

use std::path::{Path, PathBuf};

use racebank::{BankSpec, Mode, StoreKind};
use reqwest::Url;

use crate::commands::bank::bank;
use crate::commands::sweep::{each_point, write_points, At, Sends, Sweep};
use crate::output::sweep_bank::BankPoint;
use crate::plan::bank::{BankLoad, BankPlan, BankScenario};

/// Runs every point of a bank sweep, in order (mode, then work, then concurrency), calling `each`
/// after each one so a long sweep shows its progress.
pub async fn sweep_bank(
    sweep: &Sweep,
    each: impl FnMut(&BankPoint),
) -> anyhow::Result<Vec<BankPoint>> {
    let Sends::Bank { accounts, .. } = sweep.sends else {
        anyhow::bail!("a sweep of deposits runs through `sweep`");
    };
    let spec = BankSpec::numbered(accounts, 0, &[]).map_err(anyhow::Error::msg)?;
    let measure = |at: At, urls: Vec<Url>| async move {
        let report = bank(sweep.bank_load(&urls, at.concurrency)).await?;
        // A running server's mode is its label: no guard of ours is known to be in it.
        let in_process = at.mode.parse::<Mode>().is_ok_and(Mode::guards_in_process);
        Ok(BankPoint::new(at.mode, in_process, at.work, &report))
    };
    each_point(sweep, Some(&spec), measure, each).await
}

/// Refuses, before anything runs, a mode the bank of `store` does not run (the server's own
/// refusal, naming the modes it runs).
pub(crate) fn check_modes(modes: &[Mode], store: StoreKind) -> anyhow::Result<()> {
    for mode in modes {
        mode.check_bank_store(store)?;
    }
    Ok(())
}

impl Sweep {
    /// The `bank` run of one point: Jepsen's transfers and reads, round robin over the point's
    /// servers.
    fn bank_load(&self, urls: &[Url], concurrency: u64) -> BankLoad {
        let mut load = BankLoad::new(urls[0].clone());
        load.targets = urls.to_vec();
        if let Sends::Bank {
            accounts,
            total,
            max_transfer,
            reads,
        } = self.sends
        {
            load.plan = BankPlan {
                seed: self.seed,
                accounts,
                max_transfer,
                reads,
                scenario: BankScenario::Transfers,
            };
            load.total = total;
        }
        load.concurrency = concurrency;
        load.limit = self.limit;
        load.timeout = self.timeout;
        load.threads = self.threads;
        load
    }

    /// Whether the sweep sends Jepsen's bank rather than deposits.
    pub fn is_bank(&self) -> bool {
        matches!(self.sends, Sends::Bank { .. })
    }
}

/// Writes `NAME.csv`, `NAME.json`, `NAME-money.svg`/`.png` and `NAME-transfers.svg`/`.png` into
/// `dir` (created if missing); returns the paths written.
pub fn write_bank_files(
    sweep: &Sweep,
    points: &[BankPoint],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    write_points(sweep, points, dir, name)
}
