//! The result of a bank run: one [`BankReport`], printed as aligned text or as JSON.
//!
//! The text: what was sent and how it was answered (as `run`'s summary), the reads (Jepsen's
//! `wrong-total` and `negative-value` with their witnesses), the transfers by outcome, every
//! account's final balance against its range, the server's `/stats` beside, and one verdict line
//! that names each anomaly with its witnesses.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use racebank::wire::bank::BankStats;
use serde::Serialize;

use crate::check::bank::{
    AccountCheck, Anomaly, BankCheck, BankVerdict, FinalRead, ReadErrors, Transfers,
};
use crate::engine::bank::Seen;
use crate::engine::stats::Errors;
use crate::output::summary::{latency, Latency};
use crate::output::table::{Column, Fields, Table};
use crate::output::{
    json, Render, EXIT_DEADLOCKS, EXIT_INCONCLUSIVE, EXIT_INCONSISTENT_ANSWERS, EXIT_INTERRUPTED,
    EXIT_LOST, EXIT_PROTOCOL_ERROR, EXIT_SERVER_LOST, EXIT_TOO_MANY_ERRORS,
};
use crate::plan::bank::BankScenario;

/// The width of the names in the text, colon included.
const NAMES: usize = 18;

/// What the workers did, as the command hands it over.
pub(crate) struct Sent<O> {
    /// Traffic and the checker's fold.
    pub(crate) seen: Seen<O>,
    /// Wall time of the load, in seconds.
    pub(crate) elapsed: f64,
    /// Stopped by Ctrl-C.
    pub(crate) interrupted: bool,
    /// Why the run ended before its count or deadline, if it did.
    pub(crate) stopped_early: Option<String>,
    /// `--max-error-rate`.
    pub(crate) max_error_rate: Option<f64>,
}

/// What a bank run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankSetup {
    /// The server's base URL (the first replica's).
    pub url: String,
    /// Every replica's URL, in the order given.
    pub urls: Vec<String>,
    /// Accounts transfers move money between.
    pub accounts: usize,
    /// The money in the bank.
    pub total: i64,
    /// The largest transfer.
    pub max_transfer: i64,
    /// The share of reads.
    pub reads: f64,
    /// What was sent.
    #[serde(serialize_with = "scenario_name")]
    pub scenario: BankScenario,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// Worker threads.
    pub threads: usize,
    /// Seed of the operation sequence.
    pub seed: u64,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes a reference"
)]
fn scenario_name<S: serde::Serializer>(scenario: &BankScenario, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match scenario {
        BankScenario::Transfers => "transfers",
        BankScenario::Deadlock => "deadlock",
        BankScenario::WriteSkew => "write-skew",
        BankScenario::DoubleSpend => "double-spend",
    })
}

/// What a bank run concludes (the JSON's `verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BankConclusion {
    /// Every read summed to the total with no negative balance, every account ended in its
    /// range, no deadlock, and at least one read or transfer was answered.
    Consistent,
    /// Money created or destroyed, transfers lost, or a negative balance (exit 1).
    Lost,
    /// Reads with the wrong total while the money is right (exit 6, as `run`'s inconsistent
    /// answers).
    ReadSkew,
    /// The money is right, but transfers were answered 503 `deadlock` (exit 8).
    Deadlocks,
    /// Another client moved money (the server's `/stats` shows operations this run did not
    /// send), or nothing was answered (exit 3).
    Inconclusive,
    /// The server stopped answering before the final read, and nothing else proves an anomaly
    /// (exit 5).
    Unknown,
    /// Reads without every account, or a final read with no balances (exit 7).
    ProtocolError,
}

/// The server's bank `/stats` beside the client's verdict: printed, never the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossCheck {
    /// Transfers the server acknowledged during the run.
    pub transfers: u64,
    /// Deposits and withdrawals it acknowledged during the run (this run sends none).
    pub deposits_and_withdrawals: u64,
    /// Writes that replaced a balance other than the one they read.
    pub lost_updates: u64,
    /// Money those writes created.
    pub money_created: i128,
    /// Money those writes destroyed.
    pub money_destroyed: i128,
    /// The server's total minus its expected total, after the run.
    pub drift: i128,
    /// Deadlocks it detected during the run (503 answers, or redone by a store).
    pub deadlocks: u64,
    /// Sections redone after a conflict.
    pub retries: u64,
    /// The server's counters show operations this run cannot account for: another client.
    pub interference: bool,
    /// Its drift is the client's final total minus the total, and its transfers lie in the
    /// client's range.
    pub agrees: bool,
}

impl CrossCheck {
    /// Compares the bank's stats before and after with what the client saw.
    pub fn new(
        before: &BankStats,
        after: &BankStats,
        check: &BankCheck,
        verdict: &BankVerdict,
    ) -> Self {
        let transfers = after.transfers.saturating_sub(before.transfers);
        let others = (after.deposits + after.withdrawals)
            .saturating_sub(before.deposits + before.withdrawals);
        let in_range =
            (check.applied.count..=check.applied.count + check.unknown.count).contains(&transfers);
        let interference = others > 0 || !in_range || after.opening_total != before.opening_total;
        let drift_matches = verdict
            .final_total
            .is_none_or(|total| after.drift == total - verdict.total);
        CrossCheck {
            transfers,
            deposits_and_withdrawals: others,
            lost_updates: after.lost_updates.saturating_sub(before.lost_updates),
            money_created: after.money_created - before.money_created,
            money_destroyed: after.money_destroyed - before.money_destroyed,
            drift: after.drift,
            deadlocks: after.deadlocks.saturating_sub(before.deadlocks),
            retries: after.retries.saturating_sub(before.retries),
            interference,
            agrees: in_range && !interference && drift_matches,
        }
    }
}

/// How the reads went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reads {
    /// Successful reads.
    pub ok: u64,
    /// Reads that failed.
    pub failed: u64,
    /// Jepsen's `wrong-total`.
    pub wrong_total: Option<ReadErrors>,
    /// Jepsen's `negative-value`.
    pub negative_value: Option<ReadErrors>,
    /// Jepsen's `nil-balance` and `unexpected-key`.
    pub malformed: Option<ReadErrors>,
}

/// How the transfers went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TransferOutcomes {
    /// Acknowledged.
    pub applied: Transfers,
    /// Refused (409).
    pub refused: Transfers,
    /// Answered 503 `deadlock`.
    pub deadlocks: Transfers,
    /// Not applied otherwise.
    pub rejected: Transfers,
    /// May or may not have been applied.
    pub unknown: Transfers,
}

/// One bank run, as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the run's yes-or-no facts, each a field of the JSON"
)]
pub struct BankReport {
    /// What was sent.
    #[serde(flatten)]
    pub setup: BankSetup,
    /// Requests finished.
    pub requests: u64,
    /// Wall time, in seconds.
    pub duration_s: f64,
    /// Requests per second.
    pub rps: f64,
    /// Failures by kind.
    pub errors: Errors,
    /// Answers by status.
    pub status_codes: BTreeMap<String, u64>,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Latency,
    /// The reads.
    pub reads: Reads,
    /// The transfers.
    pub transfers: TransferOutcomes,
    /// The checker's verdict: totals, accounts, anomalies.
    #[serde(flatten)]
    pub verdict: BankVerdict,
    /// What the run concludes.
    #[serde(rename = "verdict")]
    pub conclusion: BankConclusion,
    /// Why inconclusive, when it is.
    pub inconclusive_reason: Option<String>,
    /// Why the final read failed, when the server stopped answering.
    pub server_lost: Option<String>,
    /// What the final read was answered with, when it held no balances.
    pub protocol_error: Option<String>,
    /// The server's `/stats` beside, when it has a bank.
    pub server_stats: Option<CrossCheck>,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Why the run ended early, if it did.
    pub stopped_early: Option<String>,
    /// Failed requests over all.
    pub error_rate: f64,
    /// `--max-error-rate`.
    pub max_error_rate: Option<f64>,
    /// Over it.
    pub too_many_errors: bool,
}

impl BankReport {
    /// The report of a run, from what was sent, the final read, the verdict and the cross-check.
    pub(crate) fn new(
        setup: BankSetup,
        sent: &Sent<BankCheck>,
        last: &FinalRead,
        verdict: BankVerdict,
        server_stats: Option<CrossCheck>,
    ) -> Self {
        let (traffic, check) = (&sent.seen.traffic, &sent.seen.observer);
        let failed = traffic.errors.total();
        #[allow(clippy::cast_precision_loss, reason = "a rate to read")]
        let error_rate = if traffic.requests > 0 {
            failed as f64 / traffic.requests as f64
        } else {
            0.0
        };
        #[allow(clippy::cast_precision_loss, reason = "a rate to read")]
        let rps = if sent.elapsed > 0.0 {
            traffic.requests as f64 / sent.elapsed
        } else {
            0.0
        };
        let (server_lost, protocol_error) = match last {
            FinalRead::Balances(_) => (None, None),
            FinalRead::ServerLost(reason) => (Some(reason.clone()), None),
            FinalRead::Unreadable(reason) => (None, Some(reason.clone())),
        };
        let (conclusion, inconclusive_reason) = conclude(&verdict, server_stats.as_ref(), last);
        BankReport {
            setup,
            requests: traffic.requests,
            duration_s: sent.elapsed,
            rps,
            errors: traffic.errors,
            status_codes: (traffic.status_codes.iter())
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            latency_ms: latency(&traffic.latency),
            reads: Reads {
                ok: check.reads,
                failed: check.failed_reads,
                wrong_total: check.wrong_total.clone(),
                negative_value: check.negative.clone(),
                malformed: check.malformed.clone(),
            },
            transfers: TransferOutcomes {
                applied: check.applied,
                refused: check.refused,
                deadlocks: check.deadlocks,
                rejected: check.rejected,
                unknown: check.unknown,
            },
            verdict,
            conclusion,
            inconclusive_reason,
            server_lost,
            protocol_error,
            server_stats,
            interrupted: sent.interrupted,
            stopped_early: sent.stopped_early.clone(),
            error_rate,
            max_error_rate: sent.max_error_rate,
            too_many_errors: sent.max_error_rate.is_some_and(|limit| error_rate > limit),
        }
    }
}

/// The conclusion, in order: another client, money, protocol, read skew, no final read, no
/// evidence, deadlocks.
fn conclude(
    verdict: &BankVerdict,
    cross_check: Option<&CrossCheck>,
    last: &FinalRead,
) -> (BankConclusion, Option<String>) {
    if let Some(check) = cross_check.filter(|check| check.interference) {
        return (
            BankConclusion::Inconclusive,
            Some(format!(
                "the server acknowledged {} transfers and {} deposits or withdrawals during the run, which this client's requests do not account for: another client moved money",
                check.transfers, check.deposits_and_withdrawals
            )),
        );
    }
    let has = |anomaly| verdict.anomalies.contains(&anomaly);
    if verdict.anomalies.iter().any(|anomaly| anomaly.is_money()) {
        (BankConclusion::Lost, None)
    } else if has(Anomaly::MalformedReads) || matches!(last, FinalRead::Unreadable(_)) {
        (BankConclusion::ProtocolError, None)
    } else if has(Anomaly::ReadSkew) {
        (BankConclusion::ReadSkew, None)
    } else if matches!(last, FinalRead::ServerLost(_)) {
        (BankConclusion::Unknown, None)
    } else if verdict.evidence == 0 {
        (
            BankConclusion::Inconclusive,
            Some("no evidence: no read and no transfer was answered".to_string()),
        )
    } else if has(Anomaly::Deadlocks) {
        (BankConclusion::Deadlocks, None)
    } else {
        (BankConclusion::Consistent, None)
    }
}

impl Render for BankReport {
    fn to_text(&self) -> String {
        [
            self.header(),
            self.latency(),
            self.status_codes(),
            self.reads_text(),
            self.transfers_text(),
            self.accounts_text(),
            self.verdict_text(),
        ]
        .concat()
    }

    fn to_json(&self) -> String {
        json(self)
    }

    /// 0 consistent, 1 money wrong, 3 inconclusive, 4 too many errors, 5 server lost, 6 read
    /// skew, 7 protocol error, 8 deadlocks, 130 interrupted.
    fn exit_code(&self) -> u8 {
        if self.interrupted {
            return EXIT_INTERRUPTED;
        }
        match self.conclusion {
            BankConclusion::Lost => EXIT_LOST,
            BankConclusion::ProtocolError => EXIT_PROTOCOL_ERROR,
            BankConclusion::ReadSkew => EXIT_INCONSISTENT_ANSWERS,
            BankConclusion::Unknown => EXIT_SERVER_LOST,
            BankConclusion::Inconclusive => EXIT_INCONCLUSIVE,
            BankConclusion::Deadlocks => EXIT_DEADLOCKS,
            BankConclusion::Consistent if self.too_many_errors => EXIT_TOO_MANY_ERRORS,
            BankConclusion::Consistent => 0,
        }
    }
}

/// `#index (t ms): total T [b0 b1 ...]`.
fn read_witness(witness: &crate::check::bank::ReadWitness) -> String {
    let balances: Vec<String> = (witness.balances.iter())
        .map(|b| b.map_or_else(|| "-".to_string(), |b| b.to_string()))
        .collect();
    format!(
        "#{} at {:.1} ms, total {} [{}]",
        witness.index,
        micros_to_ms(witness.end_us),
        witness.total,
        balances.join(" ")
    )
}

#[allow(clippy::cast_precision_loss, reason = "a time to read")]
fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl BankReport {
    fn header(&self) -> String {
        let s = &self.setup;
        let mut f = Fields::new(NAMES);
        f.line("Target", &s.urls.join(", "));
        if s.urls.len() > 1 {
            f.line(
                "Replicas",
                &format!(
                    "{}: transfers and reads round robin; the reset, the reads around the run and /stats on the first",
                    s.urls.len()
                ),
            );
        }
        f.line(
            "Bank",
            &format!(
                "{} accounts, total {}, transfers of 1..={}, reads {}, scenario {}",
                s.accounts,
                s.total,
                s.max_transfer,
                s.reads,
                match s.scenario {
                    BankScenario::Transfers => "transfers",
                    BankScenario::Deadlock => "deadlock",
                    BankScenario::WriteSkew => "write-skew",
                    BankScenario::DoubleSpend => "double-spend",
                }
            ),
        );
        f.line(
            "Load",
            &format!(
                "{} threads, concurrency {}, seed {}",
                s.threads, s.concurrency, s.seed
            ),
        );
        f.line("Requests", &self.requests.to_string());
        if self.interrupted {
            f.line(
                "Interrupted",
                &format!(
                    "yes (Ctrl-C): a partial run; {} requests in flight counted as unknown",
                    self.errors.interrupted
                ),
            );
        }
        if let Some(reason) = &self.server_lost {
            f.line(
                "Server lost",
                &format!("the server stopped answering: {reason}"),
            );
        }
        if let Some(reason) = &self.stopped_early {
            f.line("Stopped early", reason);
        }
        f.line("Duration", &format!("{:.4} s", self.duration_s));
        f.line("Requests/sec", &format!("{:.1}", self.rps));
        if self.errors.total() > 0 {
            let limit = match self.max_error_rate {
                Some(limit) if self.too_many_errors => {
                    format!(": over --max-error-rate {limit}, the run FAILS")
                }
                Some(limit) => format!(" (--max-error-rate {limit})"),
                None => String::new(),
            };
            f.line(
                "Errors",
                &format!(
                    "{} ({:.1}%{limit}): {}",
                    self.errors.total(),
                    self.error_rate * 100.0,
                    serde_json::to_string(&self.errors).unwrap_or_default()
                ),
            );
        }
        format!("Summary:\n{}", f.render())
    }

    fn latency(&self) -> String {
        let l = &self.latency_ms;
        let mut f = Fields::new(NAMES);
        for (name, value) in [("p50", l.p50), ("p99", l.p99), ("max", l.max)] {
            f.line(name, &format!("{value:.3} ms"));
        }
        format!("\nLatency:\n{}", f.render())
    }

    fn status_codes(&self) -> String {
        let mut f = Fields::new(NAMES);
        if self.status_codes.is_empty() {
            f.line("none", "no request was answered");
        }
        for (status, count) in &self.status_codes {
            f.line(&format!("[{status}]"), &format!("{count} responses"));
        }
        format!("\nStatus codes:\n{}", f.render())
    }

    fn reads_text(&self) -> String {
        let r = &self.reads;
        let mut f = Fields::new(NAMES);
        f.line(
            "answered",
            &format!(
                "{} ok, {} failed; each must sum to {}",
                r.ok, r.failed, self.verdict.total
            ),
        );
        for (name, errors) in [
            ("wrong-total", &r.wrong_total),
            ("negative-value", &r.negative_value),
            ("malformed", &r.malformed),
        ] {
            match errors {
                None => f.line(name, "0"),
                Some(e) => {
                    f.line(
                        name,
                        &format!("{} reads, totals {}..={}", e.count, e.lowest, e.highest),
                    );
                    f.line("  first", &read_witness(&e.first));
                    f.line("  worst", &read_witness(&e.worst));
                    f.line("  last", &read_witness(&e.last));
                }
            }
        }
        format!("\nReads:\n{}", f.render())
    }

    fn transfers_text(&self) -> String {
        let t = &self.transfers;
        let mut f = Fields::new(NAMES);
        for (name, transfers, meaning) in [
            ("acknowledged", &t.applied, "applied"),
            ("refused", &t.refused, "409: not applied"),
            ("deadlocks", &t.deadlocks, "503 deadlock: not applied"),
            ("rejected", &t.rejected, "other errors: not applied"),
            ("unknown", &t.unknown, "may have been applied: ranges below"),
        ] {
            let first = transfers.first.map_or_else(String::new, |w| {
                format!(
                    "; first #{}: {} -> {} of {}",
                    w.index, w.from, w.to, w.amount
                )
            });
            if transfers.count > 0 || name == "acknowledged" {
                f.line(
                    name,
                    &format!(
                        "{} moving {} ({meaning}){first}",
                        transfers.count, transfers.sum
                    ),
                );
            }
        }
        format!("\nTransfers:\n{}", f.render())
    }

    fn accounts_text(&self) -> String {
        if self.verdict.accounts.is_empty() {
            return String::new();
        }
        let mut table = Table::new(
            "  ",
            vec![
                Column::right(7),
                Column::right(7),
                Column::right(9).fit(),
                Column::right(7),
                Column::right(5),
            ],
        );
        table.row(["account", "opening", "expected", "final", "off"]);
        for account in &self.verdict.accounts {
            table.row(account_row(account));
        }
        let total = self
            .verdict
            .final_total
            .map_or_else(|| "unknown".to_string(), |total| total.to_string());
        format!(
            "\nAccounts (final total {total} of {}):\n{}",
            self.verdict.total,
            table.render()
        )
    }

    fn verdict_text(&self) -> String {
        let mut out = String::from("\n");
        if let Some(check) = &self.server_stats {
            let _ = writeln!(
                out,
                "Server /stats:      {} transfers, {} lost updates creating {} and destroying {}, drift {}, {} deadlocks, {} redos; agrees: {}",
                check.transfers,
                check.lost_updates,
                check.money_created,
                check.money_destroyed,
                check.drift,
                check.deadlocks,
                check.retries,
                if check.agrees { "yes" } else { "no" }
            );
        }
        let _ = writeln!(out, "Verdict: {}", self.verdict_line());
        out
    }

    /// The one line naming each anomaly with its witnesses, or why there is none.
    pub fn verdict_line(&self) -> String {
        match self.conclusion {
            BankConclusion::Consistent => {
                return "consistent: every read summed to the total, no balance below zero, every account where the acknowledged transfers put it".to_string();
            }
            BankConclusion::Inconclusive => {
                return format!(
                    "inconclusive: {}",
                    self.inconclusive_reason
                        .as_deref()
                        .unwrap_or("nothing proved")
                );
            }
            BankConclusion::Unknown if self.verdict.anomalies.is_empty() => {
                return "unknown: the server stopped answering before the final read".to_string();
            }
            _ => {}
        }
        let phrases: Vec<String> = (self.verdict.anomalies.iter())
            .map(|&anomaly| self.phrase(anomaly))
            .collect();
        let lead = match self.conclusion {
            BankConclusion::Deadlocks => "DEADLOCKS (the money is right)",
            BankConclusion::ReadSkew => "READ SKEW (the money is right, the reads are not)",
            BankConclusion::ProtocolError => "PROTOCOL ERROR",
            _ => "NOT CONSISTENT",
        };
        format!("{lead}: {}", phrases.join("; "))
    }

    fn phrase(&self, anomaly: Anomaly) -> String {
        let v = &self.verdict;
        let off: Vec<String> = v
            .off_accounts()
            .map(|a| format!("{} {:+}", a.account, a.off))
            .collect();
        let off = if off.is_empty() {
            "none".to_string()
        } else {
            off.join(", ")
        };
        let reads = |errors: &Option<ReadErrors>| {
            errors.as_ref().map_or_else(String::new, |e| {
                format!(
                    "{} of {} reads (first #{}, worst #{} total {}, last #{}; totals {}..={})",
                    e.count,
                    self.reads.ok,
                    e.first.index,
                    e.worst.index,
                    e.worst.total,
                    e.last.index,
                    e.lowest,
                    e.highest
                )
            })
        };
        match anomaly {
            Anomaly::MoneyCreated | Anomaly::MoneyDestroyed => format!(
                "{}: the final total is {}, not {} ({:+}); accounts off their range: {off}; wrong-total reads: {}",
                anomaly.name(),
                v.final_total.unwrap_or_default(),
                v.total,
                v.final_total.unwrap_or_default() - v.total,
                if self.reads.wrong_total.is_some() { reads(&self.reads.wrong_total) } else { "none".to_string() }
            ),
            Anomaly::LostTransfers => format!(
                "lost transfers: the total is right but accounts are not where the acknowledged transfers put them: {off}"
            ),
            Anomaly::ReadSkew | Anomaly::WrongTotal => {
                format!("{}: {}", anomaly.name(), reads(&self.reads.wrong_total))
            }
            Anomaly::NegativeBalance => format!(
                "negative balance: {}",
                if self.reads.negative_value.is_some() { reads(&self.reads.negative_value) } else { "in the final read".to_string() }
            ),
            Anomaly::MalformedReads => format!("malformed reads: {}", reads(&self.reads.malformed)),
            Anomaly::Deadlocks => {
                let d = &self.transfers.deadlocks;
                let first = d.first.map_or_else(String::new, |w| {
                    format!(", first #{}: {} -> {}", w.index, w.from, w.to)
                });
                format!("deadlocks: {} transfers answered 503 deadlock (not applied){first}", d.count)
            }
        }
    }
}

fn account_row(account: &AccountCheck) -> [String; 5] {
    let expected = if account.expected_min == account.expected_max {
        account.expected_min.to_string()
    } else {
        format!("{}..={}", account.expected_min, account.expected_max)
    };
    [
        account.account.to_string(),
        account.opening.to_string(),
        expected,
        account
            .actual
            .map_or_else(|| "-".to_string(), |b| b.to_string()),
        if account.off == 0 {
            "0".to_string()
        } else {
            format!("{:+}", account.off)
        },
    ]
}
