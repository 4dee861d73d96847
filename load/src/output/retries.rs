//! `demo --scenario retries`: one row per way of retrying, each holding the run's [`Summary`].

use serde::{Serialize, Serializer};

use crate::output::summary::Summary;
use crate::output::table::{Column, Table};
use crate::output::{json, json_object, Render};
use crate::plan::scenario::{CHAOS, RETRY_AMOUNT};

/// One way of sending the deposits, and what came of it.
///
/// Its JSON: `client`, `retry` (`--retry N`), `idempotency_keys`, then from the run: `requests`
/// (each deposit once, however often retried), `ok`, `errors` (unanswered in the end), `resent`
/// (attempts sent again: the run's `retries`), `expected_balance`, `expected_min`,
/// `expected_max`, `final_balance`, `lost_amount` (negative when money appeared), `consistent`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRow {
    /// `no retry`, `retry without keys`, `retry with keys`.
    pub client: String,
    /// `--retry N`.
    pub retry: u32,
    /// Whether each deposit carried an `Idempotency-Key`.
    pub idempotency_keys: bool,
    /// The run, which read its final balance (a row is only made from such a run).
    pub summary: Summary,
}

impl RetryRow {
    /// The balance after the run.
    pub fn final_balance(&self) -> i64 {
        self.summary.final_balance.unwrap_or_default()
    }

    /// Expected minus final, 0 inside the range; negative when money appeared.
    pub fn lost_amount(&self) -> i128 {
        self.summary.lost_amount.unwrap_or_default()
    }

    /// Deposits unanswered in the end (dropped, never retried or out of retries).
    pub fn errors(&self) -> u64 {
        self.summary.errors.total()
    }

    /// The row's conclusion in a few words.
    pub fn verdict(&self) -> String {
        let consistent = self.summary.consistent;
        match (self.lost_amount(), self.summary.expected_balance) {
            (lost, _) if lost < 0 => format!("MONEY APPEARED: {} paid twice", -lost),
            (lost, _) if lost > 0 => format!("LOST {lost}"),
            (_, Some(_)) if consistent => "consistent, exact".to_string(),
            (_, None) if consistent => format!(
                "consistent, but only a range: {} deposits may or may not be in it",
                self.errors()
            ),
            _ => "inconsistent".to_string(),
        }
    }
}

impl Serialize for RetryRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = &self.summary;
        json_object!(serializer, "RetryRow" {
            "client": self.client,
            "retry": self.retry,
            "idempotency_keys": self.idempotency_keys,
            "requests": s.requests,
            "ok": s.ok,
            "errors": self.errors(),
            "resent": s.retries,
            "expected_balance": s.expected_balance,
            "expected_min": s.expected_min,
            "expected_max": s.expected_max,
            "final_balance": self.final_balance(),
            "lost_amount": self.lost_amount(),
            "consistent": s.consistent,
        })
    }
}

impl Render for [RetryRow] {
    /// The rows as a table, with a header saying what they show and a paragraph on why.
    fn to_text(&self) -> String {
        let requests = self.first().map_or(0, |row| row.summary.requests);
        let mut out = format!(
            "Lost acknowledgements ({requests} deposits of {RETRY_AMOUNT}; the server drops the answer of {} of the deposits it applies): what does retrying do?\n\n",
            CHAOS.drop_after_apply
        );
        let mut columns = vec![Column::left(18)];
        columns.extend([8, 5, 6, 6, 11, 6, 6].map(Column::right));
        columns.push(Column::left(0).after("  "));
        let mut table = Table::new("  ", columns);
        table.row([
            "client", "requests", "ok", "errors", "resent", "expected", "final", "lost", "verdict",
        ]);
        for row in self {
            let s = &row.summary;
            table.row([
                row.client.clone(),
                s.requests.to_string(),
                s.ok.to_string(),
                row.errors().to_string(),
                s.retries.to_string(),
                s.expected_text(),
                row.final_balance().to_string(),
                row.lost_amount().to_string(),
                row.verdict(),
            ]);
        }
        out.push_str(&table.render());
        out.push_str(
            "\nWithout a retry, every dropped answer leaves a deposit the client cannot place: the \
             balance can only be checked against a range. A retry without a key pays again every \
             deposit that was applied but not answered: money appears. A retry with an \
             Idempotency-Key is answered with the kept answer instead: each deposit counts once and \
             the expected balance is exact again.\n",
        );
        out
    }

    fn to_json(&self) -> String {
        json(self)
    }
}
