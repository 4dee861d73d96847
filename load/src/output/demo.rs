//! `demo`'s rows: one per mode and scenario, each holding the run's [`Summary`], shown as one
//! table per scenario and a closing paragraph written from the rows that ran.

use serde::{Serialize, Serializer};

use crate::output::summary::Summary;
use crate::output::table::{Column, Table};
use crate::output::{json, json_object, Render};
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
        }
        out.push_str(&closing(self));
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

/// What the rows show, said from the rows themselves: one sentence per scenario.
fn closing(rows: &[Row]) -> String {
    let mut out = String::from("What these runs show:\n");
    for scenario in [DEPOSITS, WITHDRAWALS] {
        let rows = of(rows, &scenario);
        if rows.is_empty() {
            continue;
        }
        let damaged: Vec<String> = (rows.iter().filter(|row| !row.summary.consistent))
            .map(|row| damage(row))
            .collect();
        let kept: Vec<&Row> = (rows.iter().copied())
            .filter(|row| row.summary.consistent)
            .collect();
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
        sentence.push_str(&kept_every_update(&kept));
        sentence.push_str(&fastest_and_slowest(&kept));
        out.push_str(&sentence);
        out.push_str(".\n");
    }
    out
}

/// What an inconsistent row did to the money.
fn damage(row: &Row) -> String {
    let s = &row.summary;
    match row.lost_amount() {
        lost if lost > 0 => format!(
            "{} lost {lost} of an expected {}{}",
            row.named(),
            row.expected(),
            s.duplicates
                .filter(|&d| d > 0)
                .map(|d| format!(" ({d} answers repeated a balance)"))
                .unwrap_or_default()
        ),
        lost if lost < 0 => format!(
            "{} paid out {} it never took from the balance{}",
            row.named(),
            -lost,
            if s.overdraft {
                ", more than the account ever held"
            } else {
                ""
            }
        ),
        _ => format!("{} gave answers no correct server gives", row.named()),
    }
}

/// The modes that kept every update, grouped by replicas.
fn kept_every_update(kept: &[&Row]) -> String {
    if kept.is_empty() {
        return String::new();
    }
    let mut groups: Vec<String> = Vec::new();
    let mut replica_counts: Vec<usize> = kept.iter().map(|row| row.replicas).collect();
    replica_counts.dedup();
    for replicas in replica_counts {
        let names: Vec<String> = (kept.iter())
            .filter(|row| row.replicas == replicas)
            .map(|row| row.label())
            .collect();
        groups.push(match replicas {
            1 if kept.iter().all(|row| row.replicas == 1) => names.join(", "),
            1 => format!("{} on one replica", names.join(", ")),
            _ => format!("{} on {replicas} replicas", names.join(", ")),
        });
    }
    format!(
        ". Kept every update (expected == final): {}",
        groups.join("; ")
    )
}

/// What the fastest and the slowest of the safe rows cost.
fn fastest_and_slowest(kept: &[&Row]) -> String {
    let rps = |row: &&&Row| row.summary.rps;
    let fastest = kept.iter().max_by(|a, b| rps(a).total_cmp(&rps(b)));
    let slowest = kept.iter().min_by(|a, b| rps(a).total_cmp(&rps(b)));
    match (fastest, slowest) {
        (Some(fastest), Some(slowest)) if fastest.named() != slowest.named() => format!(
            "; of those, {} ran at {:.0} req/s (p99 {:.1} ms) and {} at {:.0} req/s (p99 {:.1} ms)",
            fastest.named(),
            fastest.summary.rps,
            fastest.summary.latency_ms.p99,
            slowest.named(),
            slowest.summary.rps,
            slowest.summary.latency_ms.p99
        ),
        _ => String::new(),
    }
}
