//! `demo`'s rows: one per mode and scenario, each holding the run's [`Summary`], shown as one
//! table per scenario, each followed by its conclusion ("In short:") written from its rows.

use std::fmt::Write;

use serde::{Serialize, Serializer};

use crate::output::summary::Summary;
use crate::output::table::{Column, Table};
use crate::output::{json, json_object, percent, Render};
use crate::plan::scenario::{Scenario, DEPOSITS, WITHDRAWALS};

/// One mode under one scenario.
///
/// Its JSON: `scenario`, `store` (`memory`, `postgres`, `redis`), `replicas`, `mode`, `work`,
/// `lease` (the Redis lease modes', else null), `pool_size` (PostgreSQL connections per replica,
/// else null), `safe` (`Mode::is_safe` with these replicas, work and lease), then from the run:
/// `requests`, `rps`, `p99_ms`, `ok`, `refused`, `errors` (all kinds), `expected_balance`,
/// `expected_min`, `expected_max`, `final_balance`, `lost_amount`, `overdraft`, `duplicates`,
/// `server_lost_updates` and `retries` (the server's `/stats`: lost updates, optimistic
/// retries), `consistent` (the fields of `Report` of the same names).
#[derive(Debug, Clone, PartialEq)]
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
    /// The lease of the Redis lease modes, else `None`.
    pub lease: Option<String>,
    /// PostgreSQL connections per replica, else `None`: a pool smaller than the load is a guard
    /// too.
    pub pool_size: Option<usize>,
    /// Whether the mode is designed to keep every update with these replicas, work and lease.
    pub safe: bool,
    /// The run, which read its final balance (a row is only made from such a run).
    pub summary: Summary,
}

impl Row {
    /// The balance after the run.
    pub fn final_balance(&self) -> i64 {
        self.summary.final_balance.unwrap_or_default()
    }

    /// Expected minus final, 0 inside the range.
    pub fn lost_amount(&self) -> i128 {
        self.summary.lost_amount.unwrap_or_default()
    }

    /// Optimistic retries counted by the server's `/stats`.
    fn server_retries(&self) -> Option<u64> {
        self.summary.server_stats.as_ref().map(|s| s.retries)
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

    /// The expected balance: one number or a range.
    fn expected(&self) -> String {
        self.summary.expected_text()
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = &self.summary;
        json_object!(serializer, "Row" {
            "scenario": self.scenario,
            "store": self.store,
            "replicas": self.replicas,
            "mode": self.mode,
            "work": self.work,
            "lease": self.lease,
            "pool_size": self.pool_size,
            "safe": self.safe,
            "requests": s.requests,
            "rps": s.rps,
            "p99_ms": s.latency_ms.p99,
            "ok": s.ok,
            "refused": s.refused,
            "errors": s.errors.total(),
            "expected_balance": s.expected_balance,
            "expected_min": s.expected_min,
            "expected_max": s.expected_max,
            "final_balance": self.final_balance(),
            "lost_amount": self.lost_amount(),
            "overdraft": s.overdraft,
            "duplicates": s.duplicates,
            "server_lost_updates": s.server_stats.as_ref().map(|s| s.lost_updates),
            "retries": self.server_retries(),
            "consistent": s.consistent,
        })
    }
}

impl Render for [Row] {
    /// One table per scenario, with a header saying what each shows, and what they show.
    fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(first) = self.first() {
            out.push_str(&what_guards(first));
        }
        for scenario in [DEPOSITS, WITHDRAWALS] {
            let rows = of(self, &scenario);
            let Some(first) = rows.first() else { continue };
            out.push_str(&heading(&scenario, first.summary.requests));
            out.push('\n');
            out.push_str(&table(&rows).render());
            out.push('\n');
            out.push_str(&conclusion(&rows));
            out.push('\n');
        }
        out
    }

    fn to_json(&self) -> String {
        json(self)
    }
}

/// The rows of one scenario.
fn of<'a>(rows: &'a [Row], scenario: &Scenario) -> Vec<&'a Row> {
    rows.iter()
        .filter(|row| row.scenario == scenario.name)
        .collect()
}

/// The question a scenario's table answers.
fn heading(scenario: &Scenario, requests: u64) -> String {
    if scenario.withdraw_ratio == 0.0 {
        format!(
            "Concurrent deposits ({requests} deposits of {} into an empty account): is every acknowledged deposit kept?\n",
            scenario.amount
        )
    } else {
        format!(
            "Concurrent withdrawals ({requests} withdrawals of {} from a balance of {}): is more paid out than was held?\n",
            scenario.amount, scenario.initial_balance
        )
    }
}

/// One scenario's rows, a blank line between replica counts.
fn table(rows: &[&Row]) -> Table {
    let mut columns = vec![Column::left(12).fit()];
    columns.extend([8, 4, 8, 8, 8, 5, 7, 6, 9, 7, 7, 9, 5, 8].map(Column::right));
    columns.push(Column::left(0).after("  "));
    let mut table = Table::new("  ", columns);
    table.row([
        "mode",
        "replicas",
        "safe",
        "requests",
        "req/s",
        "p99 ms",
        "ok",
        "refused",
        "errors",
        "expected",
        "final",
        "lost",
        "overdraft",
        "dups",
        "retries",
        "verdict",
    ]);
    let optional = |value: Option<u64>| value.map_or("-".to_string(), |v| v.to_string());
    let yes_no = |yes: bool| if yes { "yes" } else { "no" }.to_string();
    let mut replicas = rows.first().map_or(1, |row| row.replicas);
    for row in rows {
        if row.replicas != replicas {
            replicas = row.replicas;
            table.blank();
        }
        let s = &row.summary;
        let verdict = if s.consistent {
            "consistent"
        } else if s.overdraft {
            "LOST UPDATES + OVERDRAFT"
        } else {
            "LOST UPDATES"
        };
        table.row([
            row.label(),
            row.replicas.to_string(),
            yes_no(row.safe),
            s.requests.to_string(),
            format!("{:.0}", s.rps),
            format!("{:.2}", s.latency_ms.p99),
            s.ok.to_string(),
            s.refused.to_string(),
            s.errors.total().to_string(),
            row.expected(),
            row.final_balance().to_string(),
            row.lost_amount().to_string(),
            yes_no(s.overdraft),
            optional(s.duplicates),
            optional(row.server_retries()),
            verdict.to_string(),
        ]);
    }
    table
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

/// What one table shows, said from its rows: one line per mode with its outcome on each replica
/// count and, where the rows show it, why; then what keeping every update cost.
fn conclusion(rows: &[&Row]) -> String {
    let mut labels: Vec<String> = Vec::new();
    for row in rows {
        if !labels.contains(&row.label()) {
            labels.push(row.label());
        }
    }
    let several = rows.iter().any(|row| row.replicas > 1);
    let width = labels.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::from("In short:\n");
    for label in &labels {
        let runs: Vec<&Row> = (rows.iter().copied())
            .filter(|row| &row.label() == label)
            .collect();
        let on = |replicas: usize| match (several, replicas) {
            (false, _) => String::new(),
            (true, 1) => " on 1 replica".to_string(),
            (true, n) => format!(" on {n}"),
        };
        let results: Vec<String> = runs.iter().map(|row| outcome(row)).collect();
        let outcomes: Vec<String> = if several && results.windows(2).all(|w| w[0] == w[1]) {
            // The same on every replica count: say it once.
            let counts: Vec<String> = runs.iter().map(|row| on(row.replicas)).collect();
            vec![format!("{}{}", results[0], counts.join(" and"))]
        } else {
            (runs.iter().zip(&results))
                .map(|(row, result)| format!("{result}{}", on(row.replicas)))
                .collect()
        };
        let _ = writeln!(
            out,
            "  {label:<width$}  {}{}",
            outcomes.join(", "),
            why(&runs)
        );
    }
    out.push_str(&cost(rows));
    out
}

/// What one row did to the money. Where every update was kept, how many requests went through
/// too: a mode that keeps every update by turning most requests away must say so.
fn outcome(row: &Row) -> String {
    let s = &row.summary;
    let errors = s.errors.total();
    match row.lost_amount() {
        _ if s.consistent && s.ok == s.requests => "kept every update".to_string(),
        _ if s.consistent => {
            let mut why = Vec::new();
            if s.refused > 0 {
                why.push(format!("{} refused with 409", s.refused));
            }
            if errors > 0 {
                why.push(format!("{errors} failed"));
            }
            format!(
                "kept every update, but {} of {} went through ({})",
                s.ok,
                s.requests,
                why.join(", ")
            )
        }
        lost if lost > 0 => {
            let expected = s.expected_max - i128::from(s.initial_balance);
            let share = if expected > 0 {
                percent(lost as f64 / expected as f64)
            } else {
                lost.to_string()
            };
            format!("lost {share} ({lost} of {})", row.expected())
        }
        lost if lost < 0 => format!(
            "paid out {} never debited{}",
            -lost,
            if s.overdraft { " (an overdraft)" } else { "" }
        ),
        _ => "gave answers no correct server gives".to_string(),
    }
}

/// Why a mode's rows came out as they did, when the rows themselves show it.
fn why(runs: &[&Row]) -> String {
    let kept_alone = runs
        .iter()
        .any(|row| row.replicas == 1 && row.summary.consistent);
    let lost_together = runs
        .iter()
        .any(|row| row.replicas > 1 && !row.summary.consistent);
    let Some(first) = runs.first() else {
        return String::new();
    };
    if kept_alone && lost_together {
        return ": an in-process guard covers one process only".to_string();
    }
    if runs.iter().all(|row| row.summary.consistent) {
        let redos: u64 = runs.iter().filter_map(|row| row.server_retries()).sum();
        return if redos > 0 {
            format!("; {redos} redos after a conflict")
        } else {
            String::new()
        };
    }
    match (first.mode.as_str(), &first.lease) {
        ("unguarded", _) => ": nothing keeps a second request out of the window".to_string(),
        (mode, _) if mode.starts_with("semaphore:") => format!(
            ": {} permits let that many requests into the window at once",
            mode.trim_start_matches("semaphore:")
        ),
        (_, Some(lease)) => format!(
            ": the {lease} lease expires while the {} work goes on",
            first.work
        ),
        _ => String::new(),
    }
}

/// What the fastest and the slowest of the rows that kept every update cost.
fn cost(rows: &[&Row]) -> String {
    let kept: Vec<&Row> = (rows.iter().copied())
        .filter(|row| row.summary.consistent)
        .collect();
    let rps = |row: &&Row| row.summary.rps;
    let fastest = kept.iter().max_by(|a, b| rps(a).total_cmp(&rps(b)));
    let slowest = kept.iter().min_by(|a, b| rps(a).total_cmp(&rps(b)));
    let speed = |row: &Row| {
        format!(
            "{}, {:.0} req/s (p99 {:.1} ms)",
            row.named(),
            row.summary.rps,
            row.summary.latency_ms.p99
        )
    };
    match (fastest, slowest) {
        (Some(fastest), Some(slowest)) if fastest.named() != slowest.named() => format!(
            "  Fastest of the modes that kept every update: {}; slowest: {}.\n",
            speed(fastest),
            speed(slowest)
        ),
        _ => String::new(),
    }
}
