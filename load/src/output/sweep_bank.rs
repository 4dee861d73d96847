//! `sweep --scenario bank`'s points: each a `bank` run (Jepsen's transfers and reads), reduced to
//! the numbers `demo --scenario bank` shows for a mode ([`TransfersRow`]) plus where the point
//! sits and its request rate. The CSV, the JSON and the charts are `sweep`'s own
//! ([`super::sweep`]); this file only says which numbers a bank point has.
//!
//! The bank's analogue of the deposits' lost share is the money a point created and destroyed:
//! the final total's distance from the opening total, which a blind write computed from a stale
//! read moves either way (an erased credit destroys money, an erased debit creates it).

use serde::{Serialize, Serializer};

use crate::output::bank::{BankConclusion, BankReport};
use crate::output::chart::YAxis;
use crate::output::demo_bank::TransfersRow;
use crate::output::json_object;
use crate::output::sweep::{csv_cell, optional, Figure, SweepPoint};

/// The columns of a bank sweep's CSV, in order (the fields of [`BankPoint`]'s JSON).
pub const BANK_CSV_HEADER: &str = "mode,work,concurrency,requests,errors,duration_s,rps,transfers,transfers_per_s,p99_ms,wrong_total_reads,money_created,money_destroyed,deadlocks,redos,server_lost_updates,verdict";

/// One point of a bank sweep: one `bank` run, and what it showed.
///
/// Its JSON and CSV (the columns of [`BANK_CSV_HEADER`]): `mode` (or the `--label` of a running
/// server), `work` (`-` for a running server), `concurrency`, then from the run: `requests`
/// (transfers and reads), `errors` (all kinds), `duration_s`, `rps`, `transfers` (acknowledged),
/// `transfers_per_s`, `p99_ms`, `wrong_total_reads` (reads that did not sum to the total),
/// `money_created` and `money_destroyed` (the final total above or below the opening total),
/// `deadlocks` and `redos` (the server's `/stats` when it has them: sections redone after a
/// conflict, serialization failures among them), `server_lost_updates` (the server's erased
/// writes, empty without `/stats`), `verdict` (`bank`'s: `consistent`, `lost`, `read_skew`,
/// `deadlocks`, `inconclusive`, `unknown`, `protocol_error`).
#[derive(Debug, Clone, PartialEq)]
pub struct BankPoint {
    /// The server's work window (`-` for a running server).
    pub work: String,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// The run's numbers as `demo --scenario bank` shows them, named by the point's mode.
    pub row: TransfersRow,
    /// Failed requests, of every kind.
    pub errors: u64,
    /// Wall time of the load, in seconds.
    pub duration_s: f64,
    /// Requests (transfers and reads) per second.
    pub rps: f64,
    /// Transfers acknowledged.
    pub transfers: u64,
    /// Writes that erased another's, by the server's `/stats`, when it has a bank's.
    pub server_lost_updates: Option<u64>,
}

impl BankPoint {
    /// The point of `report`, a bank run against a server in `mode` doing `work`; `in_process_guard`:
    /// whether the mode's guard covers one replica's requests only.
    pub(crate) fn new(
        mode: String,
        in_process_guard: bool,
        work: String,
        report: &BankReport,
    ) -> Self {
        BankPoint {
            work,
            concurrency: report.setup.concurrency,
            row: TransfersRow::new(mode, in_process_guard, report),
            errors: report.errors.total(),
            duration_s: report.duration_s,
            rps: report.rps,
            transfers: report.transfers.applied.count,
            server_lost_updates: report.server_stats.as_ref().map(|s| s.lost_updates),
        }
    }

    /// Money created plus money destroyed: how far the final total moved, whichever way.
    pub fn money_moved(&self) -> i128 {
        self.row.money_created + self.row.money_destroyed
    }

    /// `bank`'s conclusion, as its JSON names it.
    pub fn verdict(&self) -> &'static str {
        match self.row.verdict {
            BankConclusion::Consistent => "consistent",
            BankConclusion::Lost => "lost",
            BankConclusion::ReadSkew => "read_skew",
            BankConclusion::Deadlocks => "deadlocks",
            BankConclusion::Inconclusive => "inconclusive",
            BankConclusion::Unknown => "unknown",
            BankConclusion::ProtocolError => "protocol_error",
        }
    }

    /// One line for the terminal, printed as the sweep goes.
    pub fn line(&self) -> String {
        let r = &self.row;
        format!(
            "{:<12} work {:<6} c {:>4}: {:>6} requests, {:>7.0} transfers/s, p99 {:>8.2} ms, {} wrong-total reads, money created {}, destroyed {}: {}",
            r.mode,
            self.work,
            self.concurrency,
            r.requests,
            r.transfers_per_s,
            r.p99_ms,
            r.wrong_total_reads,
            r.money_created,
            r.money_destroyed,
            self.verdict()
        )
    }
}

impl Serialize for BankPoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = &self.row;
        json_object!(serializer, "BankPoint" {
            "mode": r.mode,
            "work": self.work,
            "concurrency": self.concurrency,
            "requests": r.requests,
            "errors": self.errors,
            "duration_s": self.duration_s,
            "rps": self.rps,
            "transfers": self.transfers,
            "transfers_per_s": r.transfers_per_s,
            "p99_ms": r.p99_ms,
            "wrong_total_reads": r.wrong_total_reads,
            "money_created": r.money_created,
            "money_destroyed": r.money_destroyed,
            "deadlocks": r.deadlocks,
            "redos": r.redos,
            "server_lost_updates": self.server_lost_updates,
            "verdict": self.verdict(),
        })
    }
}

impl SweepPoint for BankPoint {
    const CSV_HEADER: &'static str = BANK_CSV_HEADER;

    fn mode(&self) -> &str {
        &self.row.mode
    }

    fn work(&self) -> &str {
        &self.work
    }

    fn concurrency(&self) -> u64 {
        self.concurrency
    }

    fn cells(&self) -> Vec<String> {
        let r = &self.row;
        vec![
            csv_cell(&r.mode),
            csv_cell(&self.work),
            self.concurrency.to_string(),
            r.requests.to_string(),
            self.errors.to_string(),
            format!("{:.6}", self.duration_s),
            format!("{:.1}", self.rps),
            self.transfers.to_string(),
            format!("{:.1}", r.transfers_per_s),
            format!("{:.3}", r.p99_ms),
            r.wrong_total_reads.to_string(),
            r.money_created.to_string(),
            r.money_destroyed.to_string(),
            r.deadlocks.to_string(),
            r.redos.to_string(),
            optional(self.server_lost_updates),
            self.verdict().to_string(),
        ]
    }

    #[allow(clippy::cast_precision_loss, reason = "amounts drawn on a chart")]
    fn figures() -> Vec<Figure<Self>> {
        vec![
            Figure {
                suffix: "money",
                title: "Money created and destroyed,",
                y: YAxis::Count {
                    label: "money created + destroyed (the final total's distance from the total)"
                        .into(),
                },
                value: |p| p.money_moved() as f64,
            },
            Figure {
                suffix: "transfers",
                title: "Transfers acknowledged per second,",
                y: YAxis::Count {
                    label: "transfers per second".into(),
                },
                value: |p| p.row.transfers_per_s,
            },
        ]
    }
}
