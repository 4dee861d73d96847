//! `racebank-load sweep`: the same deposits at many concurrencies, modes and work windows, one
//! run per point, written as CSV, JSON and charts.
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
//! - in-process (the default): a fresh server per point, started by [`start_server`] from a
//!   [`ServerSpec`] whose mode and work the sweep varies, so no point inherits another's balance or
//!   counters, and whatever else the spec describes (a store, replicas) comes along unchanged;
//! - `--url`: a server already running. The sweep cannot change its mode or work, so it varies the
//!   concurrency only. Before each point it sends `POST /reset` (racebank's reset: the opening
//!   balance back, counters to zero); a server that answers 404 or 405 has none, and then each
//!   point starts where the last ended, which changes no verdict (every run reads the balance
//!   before and after, and compares `/stats` differences).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use racebank::{Mode, StoreConfig, WorkSpec};
use reqwest::{StatusCode, Url};
use serde::Serialize;

use crate::chart::{self, Chart, Series, XAxis, YAxis};
use crate::demo::{start_server, ServerSpec};
use crate::load::{Limit, Load};
use crate::ops::AmountSpec;
use crate::report::Report;
use crate::run::run;
use crate::verdict::Conclusion;

/// The requests of one point when neither `-n` nor `-z` is given: enough for the loss to show,
/// few enough that the default sweep (21 points) ends in seconds.
pub const DEFAULT_POINT_REQUESTS: u64 = 1000;

/// A whole sweep: where, which concurrencies, and the load of each point.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The servers the points run against.
    pub servers: Servers,
    /// Requests in flight at once, one point per value.
    pub concurrency: Vec<u64>,
    /// The requests (or the time) of one point.
    pub limit: Limit,
    /// The fixed amount of every deposit.
    pub amount: i64,
    /// Seed of the operation sequence.
    pub seed: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Worker threads of the load; the core count when `None`.
    pub threads: Option<usize>,
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

/// One point: one run, and what it showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The server's mode (or the `--label` of a running server).
    pub mode: String,
    /// The server's work window (`-` for a running server: unknown to the client).
    pub work: String,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// Requests finished.
    pub requests: u64,
    /// Acknowledged deposits.
    pub ok: u64,
    /// Failed requests, of every kind.
    pub errors: u64,
    /// Wall time of the load, in seconds.
    pub duration_s: f64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// The sum of the acknowledged deposits.
    pub acked_deposit_sum: i128,
    /// Expected minus final balance, 0 inside the expected range.
    pub lost_amount: i128,
    /// `max(lost_amount, 0) / acked_deposit_sum` (0 when nothing was acknowledged).
    pub lost_share_of_acked_deposits: f64,
    /// Answers that repeated another answer's balance.
    pub duplicates: Option<u64>,
    /// Lost updates counted by the server's `/stats`, when it has one.
    pub server_lost_updates: Option<u64>,
    /// `consistent`, `lost` or `inconclusive`.
    pub verdict: String,
}

impl Point {
    fn new(mode: String, work: String, report: &Report) -> anyhow::Result<Self> {
        let Some(lost_amount) = report.lost_amount else {
            anyhow::bail!(
                "the server stopped answering: {}",
                report.server_lost.as_deref().unwrap_or("no reason given")
            );
        };
        let acked = report.acknowledged.deposit_sum;
        let lost_share = if acked > 0 {
            lost_amount.max(0) as f64 / acked as f64
        } else {
            0.0
        };
        Ok(Point {
            mode,
            work,
            concurrency: report.setup.concurrency,
            requests: report.requests,
            ok: report.ok,
            errors: report.errors.total(),
            duration_s: report.duration_s,
            rps: report.rps,
            p50_ms: report.latency_ms.p50,
            p99_ms: report.latency_ms.p99,
            acked_deposit_sum: acked,
            lost_amount,
            lost_share_of_acked_deposits: lost_share,
            duplicates: report.duplicates,
            server_lost_updates: report.server_stats.as_ref().map(|s| s.lost_updates),
            verdict: match report.verdict {
                Conclusion::Consistent => "consistent",
                Conclusion::Lost => "lost",
                Conclusion::Inconclusive => "inconclusive",
                Conclusion::Unknown => "unknown",
            }
            .to_string(),
        })
    }
}

/// Runs every point, in order (mode, then work, then concurrency), calling `each` after each one
/// so a long sweep shows its progress.
pub async fn sweep(sweep: &Sweep, mut each: impl FnMut(&Point)) -> anyhow::Result<Vec<Point>> {
    anyhow::ensure!(!sweep.concurrency.is_empty(), "no concurrency to sweep");
    let mut points = Vec::new();
    match &sweep.servers {
        Servers::InProcess { base, modes, works } => {
            for &mode in modes {
                for &work in works {
                    for &concurrency in &sweep.concurrency {
                        let spec = ServerSpec {
                            mode,
                            work,
                            ..base.clone()
                        };
                        let server = start_server(&spec).await?;
                        let report = run(sweep.load(&server.urls, concurrency)).await;
                        server.stop().await?;
                        let report = report.with_context(|| {
                            format!(
                                "the point {mode}, work {work}, concurrency {concurrency} failed"
                            )
                        })?;
                        let point = Point::new(mode.to_string(), work.to_string(), &report)
                            .with_context(|| {
                                format!("the point {mode}, work {work}, concurrency {concurrency}")
                            })?;
                        each(&point);
                        points.push(point);
                    }
                }
            }
        }
        Servers::Running { urls, label } => {
            let client = reqwest::Client::builder()
                .timeout(sweep.timeout)
                .build()
                .context("cannot build the HTTP client")?;
            for &concurrency in &sweep.concurrency {
                reset(&client, &urls[0]).await?;
                let report = run(sweep.load(urls, concurrency))
                    .await
                    .with_context(|| format!("the point at concurrency {concurrency} failed"))?;
                let point = Point::new(label.clone(), "-".to_string(), &report)
                    .with_context(|| format!("the point at concurrency {concurrency}"))?;
                each(&point);
                points.push(point);
            }
        }
    }
    Ok(points)
}

impl Sweep {
    /// The load of one point: deposits of one amount, so the loss is a share of what was sent.
    fn load(&self, urls: &[Url], concurrency: u64) -> Load {
        let mut load = Load::new(urls[0].clone());
        load.targets = urls.to_vec();
        load.concurrency = concurrency;
        load.limit = self.limit;
        load.withdraw_ratio = 0.0;
        load.amount = AmountSpec {
            min: self.amount,
            max: self.amount,
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

/// The columns of the CSV, in order (the fields of [`Point`]).
pub const CSV_HEADER: &str = "mode,work,concurrency,requests,ok,errors,duration_s,rps,p50_ms,p99_ms,acked_deposit_sum,lost_amount,lost_share_of_acked_deposits,duplicates,server_lost_updates,verdict";

/// The points as CSV: [`CSV_HEADER`], then one line per point (empty cells where a value is
/// unknown).
pub fn to_csv(points: &[Point]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    let optional = |value: Option<u64>| value.map_or(String::new(), |v| v.to_string());
    for p in points {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.6},{:.1},{:.3},{:.3},{},{},{:.6},{},{},{}",
            csv_cell(&p.mode),
            csv_cell(&p.work),
            p.concurrency,
            p.requests,
            p.ok,
            p.errors,
            p.duration_s,
            p.rps,
            p.p50_ms,
            p.p99_ms,
            p.acked_deposit_sum,
            p.lost_amount,
            p.lost_share_of_acked_deposits,
            optional(p.duplicates),
            optional(p.server_lost_updates),
            p.verdict,
        );
    }
    out
}

/// A text cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The points as a JSON array.
pub fn to_json(points: &[Point]) -> String {
    serde_json::to_string_pretty(points).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}

/// One line per point, for the terminal.
pub fn point_line(p: &Point) -> String {
    format!(
        "{:<12} work {:<6} c {:>4}: {:>8.0} req/s, p99 {:>8.2} ms, lost {:>5.1} % of acknowledged deposits{}",
        p.mode,
        p.work,
        p.concurrency,
        p.rps,
        p.p99_ms,
        p.lost_share_of_acked_deposits * 100.0,
        p.server_lost_updates
            .map(|n| format!(" (server: {n} lost updates)"))
            .unwrap_or_default()
    )
}

/// The charts of a sweep, each with the suffix of its file name.
///
/// The x axis is the concurrency when more than one was swept (log2), else the work window. Each
/// line is one mode (or one mode and work, when both vary).
pub(crate) fn charts(sweep: &Sweep, points: &[Point]) -> Vec<(&'static str, Chart)> {
    let concurrencies = distinct(points.iter().map(|p| p.concurrency));
    let works = distinct(points.iter().map(|p| p.work.clone()));
    let by_concurrency = concurrencies.len() > 1 || works.len() <= 1;
    let (x, names): (XAxis, Vec<String>) = if by_concurrency {
        (XAxis::Concurrency(concurrencies.clone()), Vec::new())
    } else {
        (
            XAxis::Categories {
                label: "server work between reading and writing the balance".into(),
                names: works.clone(),
            },
            works.clone(),
        )
    };
    // A line for each combination of what is not on the x axis.
    let mut lines: Vec<(String, Vec<&Point>)> = Vec::new();
    for p in points {
        let name = match (by_concurrency, works.len() > 1, concurrencies.len() > 1) {
            (true, true, _) => format!("{}, work {}", p.mode, p.work),
            (false, _, true) => format!("{}, concurrency {}", p.mode, p.concurrency),
            _ => p.mode.clone(),
        };
        match lines.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push(p),
            None => lines.push((name, vec![p])),
        }
    }
    let x_of = |p: &Point| {
        if by_concurrency {
            p.concurrency as f64
        } else {
            names.iter().position(|w| *w == p.work).unwrap_or(0) as f64
        }
    };
    let series = |value: &dyn Fn(&Point) -> f64| -> Vec<Series> {
        lines
            .iter()
            .map(|(name, members)| Series {
                name: name.clone(),
                points: members.iter().map(|p| (x_of(p), value(p))).collect(),
            })
            .collect()
    };
    let what = match sweep.limit {
        Limit::Count(n) => format!("{n} deposits of {} per point", sweep.amount),
        Limit::Duration(d) => format!(
            "deposits of {} for {} per point",
            sweep.amount,
            racebank::format_duration(d)
        ),
    };
    let fixed = match (by_concurrency, works.as_slice(), concurrencies.as_slice()) {
        (true, [work], _) if work != "-" => format!(", server work {work}"),
        (false, _, [c]) => format!(", concurrency {c}"),
        _ => String::new(),
    };
    let place = match &sweep.servers {
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
    let subtitle = format!("{what}{fixed}; {place}");
    let against = if by_concurrency {
        "concurrency"
    } else {
        "the work window"
    };
    vec![
        (
            "lost",
            Chart {
                title: format!("Share of acknowledged deposits lost, by {against}"),
                subtitle: subtitle.clone(),
                x: x.clone(),
                y: YAxis::Share {
                    label: "lost amount / acknowledged deposits".into(),
                },
                series: series(&|p| p.lost_share_of_acked_deposits),
            },
        ),
        (
            "rps",
            Chart {
                title: format!("Throughput by {against}"),
                subtitle,
                x,
                y: YAxis::Count {
                    label: "requests per second".into(),
                },
                series: series(&|p| p.rps),
            },
        ),
    ]
}

/// The values in first-seen order, without repeats.
fn distinct<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

/// Writes `NAME.csv`, `NAME.json` and each chart as `NAME-SUFFIX.svg` and `.png` into `dir`
/// (created if missing); returns the paths written.
pub fn write_files(
    sweep: &Sweep,
    points: &[Point],
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
    write(format!("{name}.json"), to_json(points).as_bytes())?;
    for (suffix, chart) in charts(sweep, points) {
        write(
            format!("{name}-{suffix}.svg"),
            chart::to_svg(&chart)?.as_bytes(),
        )?;
        write(format!("{name}-{suffix}.png"), &chart::to_png(&chart)?)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_cell("mutex"), "mutex");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn distinct_keeps_the_first_of_each_value_in_order() {
        assert_eq!(distinct([4, 1, 4, 2, 1].into_iter()), vec![4, 1, 2]);
    }
}
