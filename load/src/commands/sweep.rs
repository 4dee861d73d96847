//! `racebank-load sweep`: the same deposits (or, with `--scenario bank`, the same bank run: see
//! [`sweep_bank`](super::sweep_bank)) at many concurrencies, modes and work windows, one run per
//! point, written as CSV, JSON and charts.
//!
//! A single run answers "did this server lose updates?"; a sweep answers "how fast does the loss
//! grow with concurrency, and what does each guard cost?". Every point is an ordinary [`run`] of
//! deposits of one fixed amount, judged from the answers alone, so a point means exactly what a run
//! means.
//!
//! What is measured at each point:
//! - `rps` and `p99_ms`, as a run reports them;
//! - `lost_share_of_acked_deposits` = `lost_amount / acknowledged deposit sum`: the share of the
//!   money the server acknowledged that is missing from the final balance. With one fixed amount
//!   it is the share of acknowledged deposits lost. It needs nothing from the server but its
//!   answers and two balance reads;
//! - `server_lost_updates`: the server's own count from `/stats` when it has one (writes that
//!   erased at least one other write, so not the same unit: one write can erase many deposits).
//!
//! Where the points run ([`Servers`]):
//! - in-process (the default): a fresh server per point, started by [`start_with_bank`] from a
//!   [`ServerSpec`] whose mode and work the sweep varies, so no point inherits another's balance or
//!   counters, and whatever else the spec describes (a store, replicas) comes along unchanged;
//! - `--url`: a server already running. The sweep cannot change its mode or work, so it varies the
//!   concurrency only. Before each point it sends `POST /reset` (racebank's reset: the opening
//!   balance back, counters to zero); a server that answers 404 or 405 has none, and then each
//!   point starts where the last ended, which changes no verdict (every run reads the balance
//!   before and after, and compares `/stats` differences).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use racebank::{BankSpec, Mode, StoreConfig, WorkSpec};
use reqwest::{StatusCode, Url};

use crate::commands::run::run;
use crate::commands::servers::{start_with_bank, ServerSpec};
use crate::output::chart;
use crate::output::json;
use crate::output::report::Report;
use crate::output::sweep::{charts, to_csv, About, Point, SweepPoint};
use crate::plan::load::{Limit, Load};
use crate::plan::ops::AmountSpec;

/// How long each point sends when neither `-n` nor `-z` is given: long enough to measure at any
/// work (a count of 1000 deposits took ~15 ms at `--work none`, too short for a rate or a p99),
/// short enough that the default sweep (21 points) ends in about fifteen seconds.
pub const DEFAULT_POINT_DURATION: Duration = Duration::from_millis(500);

/// A whole sweep: where, which concurrencies, and the load of each point.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The servers the points run against.
    pub servers: Servers,
    /// Requests in flight at once, one point per value.
    pub concurrency: Vec<u64>,
    /// The requests (or the time) of one point.
    pub limit: Limit,
    /// What every point sends.
    pub sends: Sends,
    /// Seed of the operation sequence.
    pub seed: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Worker threads of the load; the core count when `None`.
    pub threads: Option<usize>,
}

/// What every point sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sends {
    /// Deposits of one amount (`run`).
    Deposits {
        /// The fixed amount of every deposit.
        amount: i64,
    },
    /// Jepsen's bank: transfers between accounts `0..accounts` mixed with reads of every balance
    /// (`bank`).
    Bank {
        /// Accounts to move money between.
        accounts: usize,
        /// The money in the bank, opened in account 0.
        total: i64,
        /// The largest transfer.
        max_transfer: i64,
        /// The share of reads.
        reads: f64,
    },
}

/// Where the points run.
#[derive(Debug, Clone)]
pub enum Servers {
    /// A fresh in-process server per point: `base`, with each mode and each work window.
    InProcess {
        /// Everything about the server but its mode and work.
        base: ServerSpec,
        /// One line per mode in the charts.
        modes: Vec<Mode>,
        /// One x position per work window when there is more than one.
        works: Vec<WorkSpec>,
    },
    /// A server already running at these URLs (replicas), named `label` in the output.
    Running {
        /// Its replicas.
        urls: Vec<Url>,
        /// The name of its line in the charts.
        label: String,
    },
}

/// The point of one run.
fn point(at: At, report: Report) -> anyhow::Result<Point> {
    let summary = report.summary;
    if summary.lost_amount.is_none() {
        anyhow::bail!(
            "the server stopped answering: {}",
            summary.server_lost.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(Point {
        mode: at.mode,
        work: at.work,
        concurrency: report.setup.concurrency,
        summary,
    })
}

/// Runs every point of a sweep of deposits, in order (mode, then work, then concurrency), calling
/// `each` after each one so a long sweep shows its progress.
pub async fn sweep(sweep: &Sweep, each: impl FnMut(&Point)) -> anyhow::Result<Vec<Point>> {
    let Sends::Deposits { amount } = sweep.sends else {
        anyhow::bail!("a sweep of the bank runs through `sweep_bank`");
    };
    let client = reqwest::Client::builder()
        .timeout(sweep.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let measure = |at: At, urls: Vec<Url>| {
        let client = client.clone();
        async move {
            if at.server.is_none() {
                reset(&client, &urls[0]).await?;
            }
            let report = run(sweep.load(&urls, at.concurrency, amount)).await?;
            point(at, report)
        }
    };
    each_point(sweep, None, measure, each).await
}

/// One point to run: its place in the output, and the server to start for it (none for a running
/// server).
#[derive(Debug, Clone)]
pub(crate) struct At {
    /// The mode, or the label of a running server.
    pub(crate) mode: String,
    /// The work window, `-` for a running server.
    pub(crate) work: String,
    /// Requests in flight at once.
    pub(crate) concurrency: u64,
    /// The in-process server of this point, if the sweep starts its own.
    pub(crate) server: Option<ServerSpec>,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.server {
            Some(_) => write!(
                f,
                "the point {}, work {}, concurrency {}",
                self.mode, self.work, self.concurrency
            ),
            None => write!(f, "the point at concurrency {}", self.concurrency),
        }
    }
}

/// Runs every point of `sweep` in order: starts its server (with `bank`, when given), has
/// `measure` load it and make the point, stops the server, and calls `each`.
pub(crate) async fn each_point<P, F, Fut>(
    sweep: &Sweep,
    bank: Option<&BankSpec>,
    mut measure: F,
    mut each: impl FnMut(&P),
) -> anyhow::Result<Vec<P>>
where
    F: FnMut(At, Vec<Url>) -> Fut,
    Fut: Future<Output = anyhow::Result<P>>,
{
    anyhow::ensure!(!sweep.concurrency.is_empty(), "no concurrency to sweep");
    let mut points = Vec::new();
    for at in sweep.points() {
        let what = at.to_string();
        let point = match (&at.server, &sweep.servers) {
            (Some(spec), _) => {
                let server = start_with_bank(spec, bank.cloned()).await?;
                let point = measure(at.clone(), server.urls.clone()).await;
                server.stop().await?;
                point
            }
            (None, Servers::Running { urls, .. }) => measure(at.clone(), urls.clone()).await,
            (None, Servers::InProcess { .. }) => anyhow::bail!("{what} has no server"),
        }
        .with_context(|| format!("{what} failed"))?;
        each(&point);
        points.push(point);
    }
    Ok(points)
}

impl Sweep {
    /// Every point, in order: mode, then work, then concurrency (a running server: concurrency).
    pub(crate) fn points(&self) -> Vec<At> {
        let mut points = Vec::new();
        match &self.servers {
            Servers::InProcess { base, modes, works } => {
                for &mode in modes {
                    for &work in works {
                        for &concurrency in &self.concurrency {
                            let spec = ServerSpec {
                                mode,
                                work,
                                ..base.clone()
                            };
                            points.push(At {
                                mode: mode.to_string(),
                                work: work.to_string(),
                                concurrency,
                                server: Some(spec),
                            });
                        }
                    }
                }
            }
            Servers::Running { label, .. } => {
                for &concurrency in &self.concurrency {
                    points.push(At {
                        mode: label.clone(),
                        work: "-".to_string(),
                        concurrency,
                        server: None,
                    });
                }
            }
        }
        points
    }
}

impl Sweep {
    /// The load of one point: deposits of one amount, so the loss is a share of what was sent.
    fn load(&self, urls: &[Url], concurrency: u64, amount: i64) -> Load {
        let mut load = Load::new(urls[0].clone());
        load.targets = urls.to_vec();
        load.concurrency = concurrency;
        load.limit = self.limit;
        load.withdraw_ratio = 0.0;
        load.amount = AmountSpec {
            min: amount,
            max: amount,
        };
        load.seed = self.seed;
        load.timeout = self.timeout;
        load.threads = self.threads;
        load
    }
}

/// `POST /reset` on a running server: back to its opening balance with its counters at zero. A
/// server without the route (404, 405) is left as it is.
async fn reset(client: &reqwest::Client, url: &Url) -> anyhow::Result<()> {
    let reset = url.join("reset").context("cannot form the /reset URL")?;
    let response = client
        .post(reset.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .send()
        .await
        .with_context(|| format!("cannot reach {reset}"))?;
    match response.status() {
        status if status.is_success() => Ok(()),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(()),
        status => anyhow::bail!("POST {reset} answered {status}"),
    }
}

impl Sweep {
    /// The line a sweep starts with: how many points, and the load of each.
    pub fn opening_line(&self) -> String {
        let about = self.about();
        format!(
            "sweep: {} points, {} ({}); -n or -z sets the load of a point",
            self.points().len(),
            about.load,
            about.place
        )
    }

    /// What every point shares, for the charts' subtitle.
    fn about(&self) -> About {
        let load = match (self.sends, self.limit) {
            (Sends::Deposits { amount }, Limit::Count(n)) => {
                format!("{n} deposits of {amount} per point")
            }
            (Sends::Deposits { amount }, Limit::Duration(d)) => format!(
                "deposits of {amount} for {} per point",
                racebank::format_duration(d)
            ),
            (Sends::Bank { .. }, Limit::Count(n)) => {
                format!("{n} requests of Jepsen's bank per point")
            }
            (Sends::Bank { .. }, Limit::Duration(d)) => format!(
                "Jepsen's bank for {} per point",
                racebank::format_duration(d)
            ),
        };
        let place = match &self.servers {
            Servers::InProcess { base, .. } => match (&base.store, base.replicas) {
                (StoreConfig::Memory, _) => "a fresh in-process server per point".to_string(),
                (store, 1) => format!("a fresh in-process server per point, on {}", store.name()),
                (store, replicas) => format!(
                    "{replicas} in-process replicas per point sharing one account in {}",
                    store.name()
                ),
            },
            Servers::Running { urls, .. } => format!("the server at {}", urls[0]),
        };
        About { load, place }
    }
}

/// Writes `NAME.csv`, `NAME.json` and each chart as `NAME-SUFFIX.svg` and `.png` into `dir`
/// (created if missing); returns the paths written.
pub fn write_files(
    sweep: &Sweep,
    points: &[Point],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    write_points(sweep, points, dir, name)
}

/// [`write_files`] for points of any kind.
pub(crate) fn write_points<P: SweepPoint>(
    sweep: &Sweep,
    points: &[P],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut write = |file: String, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write(format!("{name}.csv"), to_csv(points).as_bytes())?;
    write(format!("{name}.json"), json(points).as_bytes())?;
    for (suffix, chart) in charts(points, &sweep.about()) {
        write(
            format!("{name}-{suffix}.svg"),
            chart::to_svg(&chart)?.as_bytes(),
        )?;
        write(format!("{name}-{suffix}.png"), &chart::to_png(&chart)?)?;
    }
    Ok(written)
}
