//! `racebank-load demo --scenario retries`: lost acknowledgements, and what retrying does about
//! them, side by side.
//!
//! One server with `--chaos drop-after-apply` ([`CHAOS`]): a share of the deposits are applied and
//! then answered with a dropped connection. The same deposits are sent three times, each to a
//! fresh server:
//!
//! 1. without retrying: every dropped answer is a deposit the client cannot place, so the expected
//!    balance is a range (Jepsen's indeterminate operations), and the client may believe money
//!    lost that was in fact kept;
//! 2. retrying without idempotency keys: every retry of an applied deposit pays it twice, and the
//!    verdict catches the money that appeared;
//! 3. retrying with keys: the retry replays the kept answer, every deposit is placed exactly once
//!    and the expected balance is a single number again.

use std::fmt::Write as _;

use anyhow::Context;
use serde::Serialize;

use crate::commands::demo::Demo;
use crate::plan::load::{Limit, Load};
use crate::plan::ops::AmountSpec;
use crate::servers::{demo_account, start_server, ServerSpec};
use racebank::chaos::Chaos;
use racebank::Mode;

/// The share of applied deposits whose answer the server drops.
pub const CHAOS: Chaos = Chaos {
    drop_after_apply: 0.2,
};

/// How often the retrying rows send an operation again: with a 0.2 drop rate, 4 attempts leave
/// one operation in 625 unanswered.
pub const RETRIES: u32 = 3;

/// The deposits sent when `--requests` is not given, and their amount.
const DEFAULT_REQUESTS: u64 = 500;
const AMOUNT: i64 = 5;

/// One way of sending the deposits, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryRow {
    /// `no retry`, `retry without keys`, `retry with keys`.
    pub client: String,
    /// `--retry N`.
    pub retry: u32,
    /// Whether each deposit carried an `Idempotency-Key`.
    pub idempotency_keys: bool,
    /// Deposits sent (each counted once, however often it was retried).
    pub requests: u64,
    /// Acknowledged.
    pub ok: u64,
    /// Unanswered in the end (dropped, never retried or out of retries).
    pub errors: u64,
    /// Attempts sent again.
    pub resent: u64,
    /// The exact expected balance, or null when a range.
    pub expected_balance: Option<i128>,
    /// Low end of the expected range.
    pub expected_min: i128,
    /// High end of the expected range.
    pub expected_max: i128,
    /// The balance after the run.
    pub final_balance: i64,
    /// expected - final, 0 inside the range; negative when money appeared.
    pub lost_amount: i128,
    /// No lost amount, no overdraft, no duplicate.
    pub consistent: bool,
}

impl RetryRow {
    /// The row's conclusion in a few words.
    pub fn verdict(&self) -> String {
        match (self.lost_amount, self.expected_balance) {
            (lost, _) if lost < 0 => format!("MONEY APPEARED: {} paid twice", -lost),
            (lost, _) if lost > 0 => format!("LOST {lost}"),
            (_, Some(_)) if self.consistent => "consistent, exact".to_string(),
            (_, None) if self.consistent => format!(
                "consistent, but only a range: {} deposits may or may not be in it",
                self.errors
            ),
            _ => "inconsistent".to_string(),
        }
    }
}

/// Runs the three rows against fresh servers of `opts`' store, in the first of `--modes` (atomic
/// by default).
pub async fn retries_demo(opts: &Demo) -> anyhow::Result<Vec<RetryRow>> {
    let mode = opts
        .modes
        .as_ref()
        .and_then(|modes| modes.first().copied())
        .unwrap_or(Mode::Atomic);
    let spec = ServerSpec {
        store: opts.store.clone(),
        account: demo_account()?,
        replicas: 1,
        mode,
        work: opts.work,
        lease: opts.lease,
        initial_balance: 0,
        chaos: CHAOS,
    };
    let mut rows = Vec::new();
    for (client, retry, keys) in [
        ("no retry", 0, false),
        ("retry without keys", RETRIES, false),
        ("retry with keys", RETRIES, true),
    ] {
        let server = start_server(&spec).await?;
        let mut load = Load::new(server.urls[0].clone());
        load.concurrency = opts.concurrency;
        load.limit = Limit::Count(opts.requests.unwrap_or(DEFAULT_REQUESTS));
        load.amount = AmountSpec {
            min: AMOUNT,
            max: AMOUNT,
        };
        load.retries = retry;
        load.idempotency_keys = keys;
        let report = crate::commands::run::run(load).await;
        server.stop().await?;
        let report = report.with_context(|| format!("the `{client}` row failed"))?;
        // The demo's own server never stops mid-run unless something is badly wrong.
        let (Some(final_balance), Some(lost_amount)) = (report.final_balance, report.lost_amount)
        else {
            anyhow::bail!(
                "the `{client}` row: the server stopped answering: {}",
                report.server_lost.as_deref().unwrap_or("no reason given")
            );
        };
        rows.push(RetryRow {
            client: client.to_string(),
            retry,
            idempotency_keys: keys && retry > 0,
            requests: report.requests,
            ok: report.ok,
            errors: report.errors.total(),
            resent: report.retries,
            expected_balance: report.expected_balance,
            expected_min: report.expected_min,
            expected_max: report.expected_max,
            final_balance,
            lost_amount,
            consistent: report.consistent,
        });
    }
    Ok(rows)
}

/// The rows as a table, with a header saying what they show.
pub fn retry_rows_to_text(rows: &[RetryRow]) -> String {
    let mut out = String::new();
    let requests = rows.first().map_or(0, |row| row.requests);
    let _ = writeln!(
        out,
        "Lost acknowledgements ({requests} deposits of {AMOUNT}; the server drops the answer of {} of the deposits it applies): what does retrying do?\n",
        CHAOS.drop_after_apply
    );
    let _ = writeln!(
        out,
        "  {:<18} {:>8} {:>5} {:>6} {:>6} {:>11} {:>6} {:>6}  verdict",
        "client", "requests", "ok", "errors", "resent", "expected", "final", "lost"
    );
    for row in rows {
        let expected = match row.expected_balance {
            Some(exact) => exact.to_string(),
            None => format!("{}..={}", row.expected_min, row.expected_max),
        };
        let _ = writeln!(
            out,
            "  {:<18} {:>8} {:>5} {:>6} {:>6} {:>11} {:>6} {:>6}  {}",
            row.client,
            row.requests,
            row.ok,
            row.errors,
            row.resent,
            expected,
            row.final_balance,
            row.lost_amount,
            row.verdict()
        );
    }
    out.push_str(
        "\nWithout a retry, every dropped answer leaves a deposit the client cannot place: the \
         balance can only be checked against a range. A retry without a key pays again every \
         deposit that was applied but not answered: money appears. A retry with an \
         Idempotency-Key is answered with the kept answer instead: each deposit counts once and \
         the expected balance is exact again.\n",
    );
    out
}

/// The rows as a JSON array.
pub fn retry_rows_to_json(rows: &[RetryRow]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}
