//! `racebank-load demo`: the project's point in one command.
//!
//! For each scenario and each mode, a fresh server is started ([`start_server`]), the same load is
//! sent to it, and the verdicts are laid side by side. A fresh server per row means no row inherits
//! another's balance or counters. The race is the expected result here, not a failure: the demo
//! exits 0 whenever it ran. The closing paragraph is written from the rows that ran.

use std::fmt::Write as _;

use anyhow::Context;
use racebank::{AccountConfig, Config, Mode, WorkSpec};
use reqwest::Url;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::load::{Limit, Load};
use crate::ops::AmountSpec;
use crate::opts::DemoOpts;
use crate::report::Report;

/// One load the demo sends to every mode.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Short name, used in the JSON rows.
    pub name: &'static str,
    /// The balance the server starts with.
    pub initial_balance: i64,
    /// Share of withdrawals.
    pub withdraw_ratio: f64,
    /// The fixed amount of each operation.
    pub amount: i64,
    /// Requests when `--requests` is not given.
    pub default_requests: u64,
}

/// Concurrent deposits into an empty account: an unguarded account keeps only some of them.
pub const DEPOSITS: Scenario = Scenario {
    name: "deposits",
    initial_balance: 0,
    withdraw_ratio: 0.0,
    amount: 5,
    default_requests: 500,
};

/// Concurrent withdrawals of 10 from a balance of 100: an unguarded account pays out more than 100.
pub const WITHDRAWALS: Scenario = Scenario {
    name: "withdrawals",
    initial_balance: 100,
    withdraw_ratio: 1.0,
    amount: 10,
    default_requests: 200,
};

/// One mode under one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `deposits` or `withdrawals`.
    pub scenario: String,
    /// The server's mode.
    pub mode: String,
    /// Whether the mode is designed to keep every update (`Mode::is_safe`).
    pub safe: bool,
    /// Requests finished.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Acknowledged operations.
    pub ok: u64,
    /// Refused withdrawals (409).
    pub refused: u64,
    /// The exact expected balance, or null when a range.
    pub expected_balance: Option<i128>,
    /// Low end of the expected range.
    pub expected_min: i128,
    /// High end of the expected range.
    pub expected_max: i128,
    /// The balance after the run.
    pub final_balance: i64,
    /// expected - final, 0 inside the range.
    pub lost_amount: i128,
    /// More paid out than ever held.
    pub overdraft: bool,
    /// Repeated balances in the answers.
    pub duplicates: Option<u64>,
    /// Lost updates counted by the server's `/stats`.
    pub server_lost_updates: Option<u64>,
    /// Optimistic retries counted by the server's `/stats`.
    pub retries: Option<u64>,
    /// No lost amount, no overdraft, no duplicate.
    pub consistent: bool,
}

impl Row {
    fn new(
        scenario: &Scenario,
        mode: Mode,
        work: WorkSpec,
        report: &Report,
    ) -> anyhow::Result<Self> {
        // The demo's own server never stops mid-run unless something is badly wrong.
        let (Some(final_balance), Some(lost_amount)) = (report.final_balance, report.lost_amount)
        else {
            anyhow::bail!(
                "the server stopped answering: {}",
                report.server_lost.as_deref().unwrap_or("no reason given")
            );
        };
        Ok(Row {
            scenario: scenario.name.to_string(),
            mode: mode.to_string(),
            safe: mode.is_safe(1, work, AccountConfig::default().lease),
            requests: report.requests,
            rps: report.rps,
            p99_ms: report.latency_ms.p99,
            ok: report.ok,
            refused: report.refused,
            expected_balance: report.expected_balance,
            expected_min: report.expected_min,
            expected_max: report.expected_max,
            final_balance,
            lost_amount,
            overdraft: report.overdraft,
            duplicates: report.duplicates,
            server_lost_updates: report.server_stats.as_ref().map(|s| s.lost_updates),
            retries: report.server_stats.as_ref().map(|s| s.retries),
            consistent: report.consistent,
        })
    }
}

/// Runs both scenarios against every mode of `opts.modes` (all of [`Mode::showcase`] by default).
pub async fn demo(opts: DemoOpts) -> anyhow::Result<Vec<Row>> {
    let modes = opts
        .modes
        .clone()
        .unwrap_or_else(|| Mode::showcase().to_vec());
    let mut rows = Vec::new();
    for scenario in [DEPOSITS, WITHDRAWALS] {
        for &mode in &modes {
            let report = run_against_fresh_server(&scenario, mode, &opts)
                .await
                .with_context(|| format!("the {} scenario in {mode} mode failed", scenario.name))?;
            rows.push(
                Row::new(&scenario, mode, opts.work, &report)
                    .with_context(|| format!("the {} scenario in {mode} mode", scenario.name))?,
            );
        }
    }
    Ok(rows)
}

/// How one row's server runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerSpec {
    /// The strategy.
    pub mode: Mode,
    /// The work between read and write.
    pub work: WorkSpec,
    /// The opening balance.
    pub initial_balance: i64,
}

/// A server started for one row: where it answers, and how to stop it.
pub struct Server {
    /// Its URLs (one per replica), in the order the load spreads over them.
    pub urls: Vec<Url>,
    stop: oneshot::Sender<()>,
    tasks: Vec<JoinHandle<Result<racebank::Stats, racebank::ServeError>>>,
}

impl Server {
    /// Stops every replica and waits for each to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        for task in self.tasks {
            task.await
                .context("the server task stopped unexpectedly")?
                .context("the server failed")?;
        }
        Ok(())
    }
}

/// Starts the server of one row: the one place that knows how. Today: `racebank::serve` in this
/// process on `127.0.0.1:0`.
pub async fn start_server(spec: ServerSpec) -> anyhow::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port for the server")?;
    let addr = listener
        .local_addr()
        .context("cannot read the server's port")?;
    let config = Config {
        account: AccountConfig {
            initial_balance: spec.initial_balance,
            ..AccountConfig::memory(spec.mode, spec.work)
        },
        ..Config::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(racebank::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Ok(Server {
        urls: vec![format!("http://{addr}")
            .parse()
            .context("cannot form the server's URL")?],
        stop,
        tasks: vec![task],
    })
}

/// Starts a server in `mode`, sends the scenario's load, stops the server.
async fn run_against_fresh_server(
    scenario: &Scenario,
    mode: Mode,
    opts: &DemoOpts,
) -> anyhow::Result<Report> {
    let server = start_server(ServerSpec {
        mode,
        work: opts.work,
        initial_balance: scenario.initial_balance,
    })
    .await?;
    let mut load = Load::new(server.urls[0].clone());
    load.targets = server.urls.clone();
    load.concurrency = opts.concurrency;
    load.limit = Limit::Count(opts.requests.unwrap_or(scenario.default_requests));
    load.withdraw_ratio = scenario.withdraw_ratio;
    load.amount = AmountSpec {
        min: scenario.amount,
        max: scenario.amount,
    };
    let report = crate::run(load).await;
    server.stop().await?;
    report
}

/// The rows as a JSON array.
pub fn rows_to_json(rows: &[Row]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}

/// The rows as one table per scenario, with a header saying what each shows.
pub fn rows_to_text(rows: &[Row]) -> String {
    let mut out = String::new();
    for scenario in [DEPOSITS, WITHDRAWALS] {
        let rows: Vec<&Row> = rows
            .iter()
            .filter(|row| row.scenario == scenario.name)
            .collect();
        let Some(first) = rows.first() else { continue };
        let header = if scenario.withdraw_ratio == 0.0 {
            format!(
                "Concurrent deposits ({} deposits of {} into an empty account): is every acknowledged deposit kept?",
                first.requests, scenario.amount
            )
        } else {
            format!(
                "Concurrent withdrawals ({} withdrawals of {} from a balance of {}): is more paid out than was held?",
                first.requests, scenario.amount, scenario.initial_balance
            )
        };
        let _ = writeln!(out, "{header}\n");
        let _ = writeln!(
            out,
            "  {:<12} {:>5} {:>8} {:>9} {:>9} {:>6} {:>7} {:>9} {:>7} {:>7} {:>9} {:>5} {:>8}  verdict",
            "mode", "safe", "requests", "req/s", "p99 ms", "ok", "refused", "expected", "final", "lost", "overdraft", "dups", "retries"
        );
        for row in rows {
            let expected = match row.expected_balance {
                Some(exact) => exact.to_string(),
                None => format!("{}..={}", row.expected_min, row.expected_max),
            };
            let optional = |value: Option<u64>| value.map_or("-".to_string(), |v| v.to_string());
            let verdict = if row.consistent {
                "consistent"
            } else if row.overdraft {
                "LOST UPDATES + OVERDRAFT"
            } else {
                "LOST UPDATES"
            };
            let _ = writeln!(
                out,
                "  {:<12} {:>5} {:>8} {:>9.0} {:>9.2} {:>6} {:>7} {:>9} {:>7} {:>7} {:>9} {:>5} {:>8}  {verdict}",
                row.mode,
                if row.safe { "yes" } else { "no" },
                row.requests,
                row.rps,
                row.p99_ms,
                row.ok,
                row.refused,
                expected,
                row.final_balance,
                row.lost_amount,
                if row.overdraft { "yes" } else { "no" },
                optional(row.duplicates),
                optional(row.retries),
            );
        }
        let _ = writeln!(out);
    }
    out.push_str(&closing(rows));
    out
}

/// What the rows show, said from the rows themselves.
fn closing(rows: &[Row]) -> String {
    let mut out = String::from("What these runs show:\n");
    for scenario in [DEPOSITS, WITHDRAWALS] {
        let rows: Vec<&Row> = rows
            .iter()
            .filter(|row| row.scenario == scenario.name)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mut damaged = Vec::new();
        for row in rows.iter().filter(|row| !row.consistent) {
            let expected = row.expected_balance.map_or_else(
                || format!("{}..={}", row.expected_min, row.expected_max),
                |exact| exact.to_string(),
            );
            damaged.push(match row.lost_amount {
                lost if lost > 0 => format!(
                    "{} lost {lost} of an expected {expected}{}",
                    row.mode,
                    row.duplicates
                        .filter(|&d| d > 0)
                        .map(|d| format!(" ({d} answers repeated a balance)"))
                        .unwrap_or_default()
                ),
                lost if lost < 0 => format!(
                    "{} paid out {} it never took from the balance{}",
                    row.mode,
                    -lost,
                    if row.overdraft {
                        ", more than the account ever held"
                    } else {
                        ""
                    }
                ),
                _ => format!("{} gave answers no correct server gives", row.mode),
            });
        }
        let kept: Vec<&Row> = rows.iter().copied().filter(|row| row.consistent).collect();
        let what = if scenario.withdraw_ratio == 0.0 {
            "deposits"
        } else {
            "withdrawals"
        };
        let mut sentence = format!("- Concurrent {what}: ");
        if damaged.is_empty() {
            sentence.push_str("no mode lost an update in this run");
        } else {
            sentence.push_str(&damaged.join("; "));
        }
        if !kept.is_empty() {
            let names: Vec<&str> = kept.iter().map(|row| row.mode.as_str()).collect();
            let _ = write!(
                sentence,
                ". {} kept every update (expected == final)",
                names.join(", ")
            );
        }
        let fastest = kept.iter().max_by(|a, b| a.rps.total_cmp(&b.rps));
        let slowest = kept.iter().min_by(|a, b| a.rps.total_cmp(&b.rps));
        if let (Some(fastest), Some(slowest)) = (fastest, slowest) {
            if fastest.mode != slowest.mode {
                let _ = write!(
                    sentence,
                    "; of those, {} ran at {:.0} req/s (p99 {:.1} ms) and {} at {:.0} req/s (p99 {:.1} ms)",
                    fastest.mode, fastest.rps, fastest.p99_ms, slowest.mode, slowest.rps, slowest.p99_ms
                );
            }
        }
        let _ = writeln!(out, "{sentence}.");
    }
    out
}
