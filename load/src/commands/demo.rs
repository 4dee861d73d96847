//! `racebank-load demo`: the project's point in one command.
//!
//! For each scenario and each mode, a fresh server is started ([`start_server`]), the same load is
//! sent to it, and the verdicts are laid side by side. A fresh server per row means no row inherits
//! another's guard or pool; with a shared store (`--store postgres|redis`) each row also resets the
//! demo's account first. The race is the expected result here, not a failure: the demo exits 0
//! whenever it ran. The closing paragraph is written from the rows that ran.
//!
//! With a shared store every mode runs twice, on one replica and on `--replicas N` replicas
//! (in-process servers, each with its own account object, guard and connections, sharing one account
//! in the store): that is where `mutex` is seen to be safe with one replica and to lose with three.

use std::fmt::Write as _;

use anyhow::Context;
use std::time::Duration;

use racebank::chaos::Chaos;
use racebank::cli::StoreKind;
use racebank::duration::format_duration;
use racebank::{AccountId, Mode, StoreConfig, WorkSpec};
use serde::Serialize;

use crate::output::report::Report;
use crate::plan::load::{Limit, Load};
use crate::plan::ops::AmountSpec;
use crate::servers::{demo_account, start_server, ServerSpec};

/// What `demo` compares, as the command line describes it (`demo` and `demo --scenario retries`).
#[derive(Debug, Clone)]
pub struct Demo {
    /// Requests per mode and scenario; each scenario's default when `None`.
    pub requests: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// The servers' work between reading and writing the balance.
    pub work: WorkSpec,
    /// The modes to compare; every mode the store runs when `None`.
    pub modes: Option<Vec<Mode>>,
    /// Which store the servers keep the account in.
    pub store_kind: StoreKind,
    /// The store itself.
    pub store: StoreConfig,
    /// With a shared store, the replicas of the second run of every mode.
    pub replicas: u64,
    /// The Redis lease.
    pub lease: Duration,
}

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
    /// Where the balance lived: `memory`, `postgres` or `redis`.
    pub store: String,
    /// Servers sharing the account.
    pub replicas: usize,
    /// The server's mode.
    pub mode: String,
    /// The work between read and write.
    pub work: String,
    /// The lease of the Redis lease modes, else null.
    pub lease: Option<String>,
    /// PostgreSQL connections per replica, else null: a pool smaller than the load is a guard too.
    pub pool_size: Option<usize>,
    /// Whether the mode is designed to keep every update with these replicas, work and lease
    /// (`Mode::is_safe`).
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
    /// Requests that failed otherwise (503s, transport errors).
    pub errors: u64,
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
    fn new(scenario: &Scenario, spec: &ServerSpec, report: &Report) -> anyhow::Result<Self> {
        // The demo's own server never stops mid-run unless something is badly wrong.
        let (Some(final_balance), Some(lost_amount)) = (report.final_balance, report.lost_amount)
        else {
            anyhow::bail!(
                "the server stopped answering: {}",
                report.server_lost.as_deref().unwrap_or("no reason given")
            );
        };
        let leased = matches!(
            spec.mode,
            Mode::Lease | Mode::Fenced | Mode::FencedWriteOnly
        );
        Ok(Row {
            scenario: scenario.name.to_string(),
            store: spec.store.name().to_string(),
            replicas: spec.replicas,
            mode: spec.mode.to_string(),
            work: spec.work.to_string(),
            lease: leased.then(|| format_duration(spec.lease)),
            pool_size: match spec.store {
                StoreConfig::Postgres { pool_size, .. } => Some(pool_size),
                _ => None,
            },
            safe: spec.mode.is_safe(spec.replicas, spec.work, spec.lease),
            requests: report.requests,
            rps: report.rps,
            p99_ms: report.latency_ms.p99,
            ok: report.ok,
            refused: report.refused,
            errors: report.errors.total(),
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

    /// The mode, with the lease and the work where a lease is involved: `lease (2ms < 10ms)`.
    fn label(&self) -> String {
        match &self.lease {
            Some(lease) => format!("{} ({lease} lease, {} work)", self.mode, self.work),
            None => self.mode.clone(),
        }
    }

    /// The label, and the replicas where there are several.
    fn named(&self) -> String {
        match self.replicas {
            1 => self.label(),
            replicas => format!("{} on {replicas} replicas", self.label()),
        }
    }
}

/// Runs both scenarios against every row [`plan`] lays out for `opts`.
pub async fn demo(opts: Demo) -> anyhow::Result<Vec<Row>> {
    let store = opts.store.clone();
    let account = demo_account()?;
    let mut rows = Vec::new();
    for scenario in [DEPOSITS, WITHDRAWALS] {
        for spec in plan(&opts, &store, &account) {
            let report = run_against_fresh_server(&scenario, &spec, &opts)
                .await
                .with_context(|| {
                    format!(
                        "the {} scenario in {} mode on {} replica(s) of the {} store failed",
                        scenario.name,
                        spec.mode,
                        spec.replicas,
                        spec.store.name()
                    )
                })?;
            rows.push(Row::new(&scenario, &spec, &report)?);
        }
    }
    Ok(rows)
}

/// The modes each store shows by default.
fn default_modes(store: StoreKind) -> Vec<Mode> {
    match store {
        StoreKind::Memory => Mode::showcase().to_vec(),
        StoreKind::Postgres => vec![
            Mode::Unguarded,
            Mode::Mutex,
            Mode::Semaphore(4),
            Mode::ForUpdate,
            Mode::Advisory,
            Mode::Optimistic,
            Mode::RepeatableRead,
            Mode::Serializable,
            Mode::Atomic,
        ],
        StoreKind::Redis => vec![
            Mode::Unguarded,
            Mode::Mutex,
            Mode::Optimistic,
            Mode::Atomic,
            Mode::Lease,
            Mode::FencedWriteOnly,
            Mode::Fenced,
        ],
    }
}

/// The rows of one scenario: every mode on one replica, and with a shared store on `--replicas`
/// too; the lease modes once more with a lease shorter than the work, where a lease fails.
fn plan(opts: &Demo, store: &StoreConfig, account: &AccountId) -> Vec<ServerSpec> {
    let modes = opts
        .modes
        .clone()
        .unwrap_or_else(|| default_modes(opts.store_kind));
    let replica_counts = match opts.store_kind {
        StoreKind::Memory => vec![1],
        _ if opts.replicas == 1 => vec![1],
        _ => vec![1, opts.replicas as usize],
    };
    let mut specs = Vec::new();
    for replicas in replica_counts {
        for &mode in &modes {
            let spec = ServerSpec {
                store: store.clone(),
                account: account.clone(),
                replicas,
                mode,
                work: opts.work,
                lease: opts.lease,
                initial_balance: 0,
                chaos: Chaos::default(),
            };
            let leased = matches!(mode, Mode::Lease | Mode::Fenced | Mode::FencedWriteOnly);
            if leased && opts.work.longest() < opts.lease {
                // The same mode where the work outlasts the lease: a holder is still working when
                // its lock expires and the next one gets in.
                specs.push(spec.clone());
                specs.push(ServerSpec {
                    work: WorkSpec::Sleep(OUTLASTING_WORK),
                    lease: OUTLASTING_LEASE,
                    ..spec
                });
            } else {
                specs.push(spec);
            }
        }
    }
    specs
}

/// The work and lease of the rows where the work outlasts the lease.
const OUTLASTING_WORK: Duration = Duration::from_millis(10);
const OUTLASTING_LEASE: Duration = Duration::from_millis(2);

/// Starts the row's servers, sends the scenario's load, stops the servers.
async fn run_against_fresh_server(
    scenario: &Scenario,
    spec: &ServerSpec,
    opts: &Demo,
) -> anyhow::Result<Report> {
    let server = start_server(&ServerSpec {
        initial_balance: scenario.initial_balance,
        ..spec.clone()
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
    let report = crate::commands::run::run(load).await;
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
    if let Some(first) = rows.first() {
        out.push_str(&what_guards(first));
    }
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
        let width = rows
            .iter()
            .map(|row| row.label().len())
            .max()
            .unwrap_or(0)
            .max(12);
        let _ = writeln!(
            out,
            "  {:<width$} {:>8} {:>4} {:>8} {:>8} {:>8} {:>5} {:>7} {:>6} {:>9} {:>7} {:>7} {:>9} {:>5} {:>8}  verdict",
            "mode", "replicas", "safe", "requests", "req/s", "p99 ms", "ok", "refused", "errors", "expected", "final", "lost", "overdraft", "dups", "retries"
        );
        let mut replicas = first.replicas;
        for row in rows {
            if row.replicas != replicas {
                replicas = row.replicas;
                let _ = writeln!(out);
            }
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
                "  {:<width$} {:>8} {:>4} {:>8} {:>8.0} {:>8.2} {:>5} {:>7} {:>6} {:>9} {:>7} {:>7} {:>9} {:>5} {:>8}  {verdict}",
                row.label(),
                row.replicas,
                if row.safe { "yes" } else { "no" },
                row.requests,
                row.rps,
                row.p99_ms,
                row.ok,
                row.refused,
                row.errors,
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

/// Where the balance lived and what, besides the mode, limited how many requests were in the
/// window at once: a pool smaller than the load is a guard too, so the demo says so.
fn what_guards(row: &Row) -> String {
    let work = format!(
        "every request works {} between its read and its write",
        row.work
    );
    match (row.store.as_str(), row.pool_size) {
        ("postgres", Some(pool)) => format!(
            "Store: PostgreSQL, one account shared by every replica; {work}. Each replica has a pool \
             of {pool} connections, a guard of its own: at most {pool} of a replica's requests are in \
             the window at once (the mode's guard comes on top).\n\n"
        ),
        ("redis", _) => format!(
            "Store: Redis, one account shared by every replica; {work}. Each replica shares one \
             multiplexed connection (no limit of its own), except optimistic mode's WATCH, which needs \
             a dedicated connection per request in the window.\n\n"
        ),
        _ => format!("Store: this process's memory; {work}.\n\n"),
    }
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
                    row.named(),
                    row.duplicates
                        .filter(|&d| d > 0)
                        .map(|d| format!(" ({d} answers repeated a balance)"))
                        .unwrap_or_default()
                ),
                lost if lost < 0 => format!(
                    "{} paid out {} it never took from the balance{}",
                    row.named(),
                    -lost,
                    if row.overdraft {
                        ", more than the account ever held"
                    } else {
                        ""
                    }
                ),
                _ => format!("{} gave answers no correct server gives", row.named()),
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
            let mut groups: Vec<String> = Vec::new();
            let mut replica_counts: Vec<usize> = kept.iter().map(|row| row.replicas).collect();
            replica_counts.dedup();
            for replicas in replica_counts {
                let names: Vec<String> = kept
                    .iter()
                    .filter(|row| row.replicas == replicas)
                    .map(|row| row.label())
                    .collect();
                groups.push(match replicas {
                    1 if kept.iter().all(|row| row.replicas == 1) => names.join(", "),
                    1 => format!("{} on one replica", names.join(", ")),
                    _ => format!("{} on {replicas} replicas", names.join(", ")),
                });
            }
            let _ = write!(
                sentence,
                ". Kept every update (expected == final): {}",
                groups.join("; ")
            );
        }
        let fastest = kept.iter().max_by(|a, b| a.rps.total_cmp(&b.rps));
        let slowest = kept.iter().min_by(|a, b| a.rps.total_cmp(&b.rps));
        if let (Some(fastest), Some(slowest)) = (fastest, slowest) {
            if fastest.named() != slowest.named() {
                let _ = write!(
                    sentence,
                    "; of those, {} ran at {:.0} req/s (p99 {:.1} ms) and {} at {:.0} req/s (p99 {:.1} ms)",
                    fastest.named(), fastest.rps, fastest.p99_ms, slowest.named(), slowest.rps, slowest.p99_ms
                );
            }
        }
        let _ = writeln!(out, "{sentence}.");
    }
    out
}
