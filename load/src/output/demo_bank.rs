//! `demo --scenario bank`: one table of Jepsen's transfers per mode, one table of the write-skew
//! rounds per mode, each followed by what it shows, written from its rows: on several replicas,
//! also what guarded the section (each server's process, or the shared store) and what that
//! guard covered.

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::bank_rounds::RoundWitness;
use crate::output::bank::{BankConclusion, BankReport};
use crate::output::bank_rounds::RoundsReport;
use crate::output::table::{Column, Table};
use crate::output::{json, Render};

/// Both tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankDemo {
    /// `memory`, `postgres` or `redis`.
    pub store: String,
    /// The servers sharing the bank in every row: requests round robin over them.
    pub replicas: usize,
    /// The servers' work between read and write.
    pub work: String,
    /// Jepsen's transfers, one row per mode.
    pub transfers: Vec<TransfersRow>,
    /// The write-skew rounds, one row per mode.
    pub write_skew: Vec<SkewRow>,
}

/// One mode under Jepsen's transfers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransfersRow {
    /// The server's mode.
    pub mode: String,
    /// Whether the mode's guard lives in each server's process (`mutex`, `semaphore:N`,
    /// `account-locks`), covering that replica's requests only.
    pub in_process_guard: bool,
    /// Requests sent (transfers and reads).
    pub requests: u64,
    /// Transfers acknowledged per second.
    pub transfers_per_s: f64,
    /// The 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Reads whose total was not the bank's total.
    pub wrong_total_reads: u64,
    /// The final total above the opening total.
    pub money_created: i128,
    /// The final total below it.
    pub money_destroyed: i128,
    /// Deadlocks: answered 503, or detected and redone by the store (the server's `/stats`).
    pub deadlocks: u64,
    /// Sections redone after a conflict (the server's `/stats`).
    pub redos: u64,
    /// `bank`'s conclusion.
    pub verdict: BankConclusion,
    /// `bank`'s verdict line.
    pub verdict_line: String,
}

impl TransfersRow {
    /// The row of `mode`'s `bank` run.
    pub(crate) fn new(mode: String, in_process_guard: bool, report: &BankReport) -> Self {
        let drift = report
            .verdict
            .final_total
            .map_or(0, |total| total - report.verdict.total);
        let stats = report.server_stats.as_ref();
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let transfers_per_s = report.transfers.applied.count as f64 / report.duration_s.max(1e-9);
        TransfersRow {
            mode,
            in_process_guard,
            requests: report.requests,
            transfers_per_s,
            p99_ms: report.latency_ms.p99,
            wrong_total_reads: report.reads.wrong_total.as_ref().map_or(0, |e| e.count),
            money_created: drift.max(0),
            money_destroyed: (-drift).max(0),
            deadlocks: stats.map_or(report.transfers.deadlocks.count, |s| s.deadlocks),
            redos: stats.map_or(0, |s| s.retries),
            verdict: report.conclusion,
            verdict_line: report.verdict_line(),
        }
    }

    fn verdict_word(&self) -> &'static str {
        match self.verdict {
            BankConclusion::Consistent => "consistent",
            BankConclusion::Lost if self.money_created > 0 => "MONEY CREATED",
            BankConclusion::Lost if self.money_destroyed > 0 => "MONEY DESTROYED",
            BankConclusion::Lost => "LOST TRANSFERS",
            BankConclusion::ReadSkew => "READ SKEW",
            BankConclusion::Deadlocks => "DEADLOCKS",
            BankConclusion::Inconclusive => "inconclusive",
            BankConclusion::Unknown => "server lost",
            BankConclusion::ProtocolError => "protocol error",
        }
    }
}

/// One mode under the write-skew rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkewRow {
    /// The server's mode.
    pub mode: String,
    /// Whether the mode's guard lives in each server's process.
    pub in_process_guard: bool,
    /// Rounds sent.
    pub rounds: u64,
    /// Rounds where both withdrawals went through and the household fell below zero.
    pub write_skew: u64,
    /// Rounds where the household held.
    pub held: u64,
    /// The lowest household total an anomaly answered, if any.
    pub lowest: Option<i128>,
    /// The rounds' conclusion.
    pub verdict: BankConclusion,
}

impl SkewRow {
    /// The row of `mode`'s write-skew run.
    pub(crate) fn new(mode: String, in_process_guard: bool, report: &RoundsReport) -> Self {
        let check = &report.check;
        SkewRow {
            mode,
            in_process_guard,
            rounds: check.rounds,
            write_skew: check.anomalies,
            held: check.held,
            lowest: check.worst.as_ref().map(RoundWitness::household),
            verdict: report.verdict,
        }
    }
}

impl Render for BankDemo {
    fn to_text(&self) -> String {
        let n = self.replicas;
        let mut out = if n > 1 {
            format!(
                "Store: {}, one bank shared by {n} replicas (in-process servers, each with its own guards and connections); every request works {} between its read and its write; fresh servers per mode.\n\n",
                self.store, self.work
            )
        } else {
            format!(
                "Store: {}; every request works {} between its read and its write; one fresh server per mode.\n\n",
                self.store, self.work
            )
        };
        let requests = self.transfers.first().map_or(0, |row| row.requests);
        let spread = if n > 1 {
            format!(" round robin over {n} replicas")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "Jepsen's bank ({requests} requests{spread}: transfers of 1..5 between 8 accounts holding 100, half reads of every balance): does the money stay 100?"
        );
        out.push_str(&transfers_table(&self.transfers).render());
        out.push('\n');
        out.push_str(&transfers_conclusion(&self.transfers, (n, &self.store)));
        let rounds = self.write_skew.first().map_or(0, |row| row.rounds);
        let apart = if n > 1 {
            ", alice's on replica 1 and bob's on replica 2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\nWrite skew ({rounds} rounds: alice and bob, a household of 50 + 50, each withdraw 60 at once{apart}): can the household go below zero?"
        );
        out.push_str(&skew_table(&self.write_skew).render());
        out.push('\n');
        out.push_str(&skew_conclusion(&self.write_skew, (n, &self.store)));
        out
    }

    fn to_json(&self) -> String {
        json(self)
    }
}

fn transfers_table(rows: &[TransfersRow]) -> Table {
    let mut columns = vec![Column::left(12).fit()];
    columns.extend([11, 7, 11, 7, 9, 9, 5].map(Column::right));
    columns.push(Column::left(0).after("  "));
    let mut table = Table::new("  ", columns);
    table.row([
        "mode",
        "transfers/s",
        "p99 ms",
        "wrong-total",
        "created",
        "destroyed",
        "deadlocks",
        "redos",
        "verdict",
    ]);
    for row in rows {
        table.row([
            row.mode.clone(),
            format!("{:.0}", row.transfers_per_s),
            format!("{:.2}", row.p99_ms),
            row.wrong_total_reads.to_string(),
            row.money_created.to_string(),
            row.money_destroyed.to_string(),
            row.deadlocks.to_string(),
            row.redos.to_string(),
            row.verdict_word().to_string(),
        ]);
    }
    table
}

fn skew_table(rows: &[SkewRow]) -> Table {
    let mut columns = vec![Column::left(12).fit()];
    columns.extend([6, 10, 4, 15].map(Column::right));
    columns.push(Column::left(0).after("  "));
    let mut table = Table::new("  ", columns);
    table.row([
        "mode",
        "rounds",
        "write skew",
        "held",
        "lowest household",
        "verdict",
    ]);
    for row in rows {
        table.row([
            row.mode.clone(),
            row.rounds.to_string(),
            row.write_skew.to_string(),
            row.held.to_string(),
            row.lowest
                .map_or("-".to_string(), |total| total.to_string()),
            match row.verdict {
                BankConclusion::Consistent => "holds",
                BankConclusion::Lost => "WRITE SKEW",
                _ => "inconclusive",
            }
            .to_string(),
        ]);
    }
    table
}

/// A row named by its mode, with its guard's place and its conclusion.
trait Moded {
    fn mode(&self) -> &str;
    fn in_process_guard(&self) -> bool;
    fn verdict(&self) -> BankConclusion;
}

impl Moded for TransfersRow {
    fn mode(&self) -> &str {
        &self.mode
    }
    fn in_process_guard(&self) -> bool {
        self.in_process_guard
    }
    fn verdict(&self) -> BankConclusion {
        self.verdict
    }
}

impl Moded for SkewRow {
    fn mode(&self) -> &str {
        &self.mode
    }
    fn in_process_guard(&self) -> bool {
        self.in_process_guard
    }
    fn verdict(&self) -> BankConclusion {
        self.verdict
    }
}

/// On several replicas, what guarded each row's section and what that covered: the modes whose
/// guard lives in each server's process (and those of them that `failed` that way), and the
/// store's own tools that `held` across the replicas. Nothing on one replica.
fn guard_scope<T: Moded>(
    rows: &[T],
    (replicas, store): (usize, &str),
    (failed, held): (&str, &str),
) -> String {
    let mut out = String::new();
    if replicas < 2 {
        return out;
    }
    let scoped = names(rows, Moded::in_process_guard);
    if !scoped.is_empty() {
        let _ = write!(
            out,
            "On {replicas} replicas, {scoped} guarded the section inside each server's process, which sees only that replica's requests: a request on another replica never waited for it"
        );
        let lost = names(rows, |row| {
            row.in_process_guard() && row.verdict() == BankConclusion::Lost
        });
        if !lost.is_empty() {
            let _ = write!(out, ", so {lost} {failed}");
        }
        out.push_str(". ");
    }
    let shared = names(rows, |row| {
        !row.in_process_guard()
            && row.mode() != "unguarded"
            && row.verdict() == BankConclusion::Consistent
    });
    if !shared.is_empty() {
        let _ = write!(
            out,
            "{shared} guarded it in the store ({store}), which every replica shares, and {held} on {replicas} replicas. "
        );
    }
    out
}

/// The modes of `rows` whose row `keep` picks, as `a`, `a and b`, `a, b and c`.
fn names<T: Moded>(rows: &[T], keep: impl Fn(&T) -> bool) -> String {
    let picked: Vec<&str> = rows
        .iter()
        .filter(|row| keep(row))
        .map(Moded::mode)
        .collect();
    match picked.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn transfers_conclusion(rows: &[TransfersRow], scope: (usize, &str)) -> String {
    let mut out = String::from("In short: ");
    let lost = names(rows, |row| row.verdict == BankConclusion::Lost);
    if !lost.is_empty() {
        let _ = write!(
            out,
            "{lost} let transfers computed from stale balances overwrite each other, so money was created or destroyed (the final total is not 100, or an account ended outside what the acknowledged transfers allow). "
        );
    }
    let skewed = names(rows, |row| row.wrong_total_reads > 0);
    if !skewed.is_empty() {
        let _ = write!(
            out,
            "{skewed} answered reads that did not sum to 100: a read one row at a time sees a transfer half done. "
        );
    }
    let held = names(rows, |row| row.verdict == BankConclusion::Consistent);
    if !held.is_empty() {
        let _ = write!(
            out,
            "{held} kept the money: every read summed to 100 and every account ended where the acknowledged transfers put it. "
        );
    }
    let redone = names(rows, |row| row.redos > 0 || row.deadlocks > 0);
    if !redone.is_empty() {
        let _ = write!(
            out,
            "{redone} paid for it in redone sections (conflicts or deadlocks detected and retried), the other guards in waiting: compare transfers/s. "
        );
    }
    out.push_str(&guard_scope(
        rows,
        scope,
        ("lost money as unguarded does", "kept the money"),
    ));
    format!("{}\n", out.trim_end())
}

fn skew_conclusion(rows: &[SkewRow], (replicas, store): (usize, &str)) -> String {
    let failed = names(rows, |row| row.verdict == BankConclusion::Lost);
    let held = names(rows, |row| row.verdict == BankConclusion::Consistent);
    let mut out = String::from("In short: ");
    if !failed.is_empty() {
        let _ = write!(
            out,
            "under {failed} both withdrawals read the household at 100, each wrote only its own account, and both went through: the household went below zero with no write erased. "
        );
    }
    if !held.is_empty() {
        let _ = write!(
            out,
            "{held} refused the second withdrawal (409 household-limit): it read the first one's debit. "
        );
    }
    if store == "postgres" && rows.iter().any(|row| row.mode == "repeatable-read") {
        out.push_str(
            "repeatable-read reads from a snapshot, so neither transaction sees the other's debit, and they write different rows: snapshot isolation lets write skew through. serializable sees the read-write dependency, fails one (40001), redoes it, and refuses it. ",
        );
    }
    out.push_str(&guard_scope(
        rows,
        (replicas, store),
        ("let both withdrawals through", "held the household"),
    ));
    format!("{}\n", out.trim_end())
}
