//! [`Summary`]: the numbers and the verdict of one run, computed once from the stats and the
//! verdict, and held by everything that shows a run: [`Report`](super::report::Report), a demo
//! [`Row`](super::demo::Row), a sweep [`Point`](super::sweep::Point), a
//! [`RetryRow`](super::retries::RetryRow).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::verdict::{Conclusion, CrossCheck, Duplicates, Verdict};
use crate::engine::stats::{Errors, Stats, Tally};

/// What one run did and what it proves: the top-level fields of a run's JSON after its setup
/// (documented on [`Report`](super::report::Report)).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the run's yes-or-no facts, each a field of the JSON"
)]
pub struct Summary {
    /// Requests finished.
    pub requests: u64,
    /// Wall time of the load, in seconds.
    pub duration_s: f64,
    /// Requests per second.
    pub rps: f64,
    /// 2xx answers.
    pub ok: u64,
    /// 409 answers.
    pub refused: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// Answers by status code.
    pub status_codes: BTreeMap<String, u64>,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Latency,
    /// The balance before.
    pub initial_balance: i64,
    /// The exact expected balance, or `None` when it is a range.
    pub expected_balance: Option<i128>,
    /// The low end of the expected range.
    pub expected_min: i128,
    /// The high end of the expected range.
    pub expected_max: i128,
    /// The balance after, or `None` when the server stopped answering.
    pub final_balance: Option<i64>,
    /// Signed distance from the expected range to the final balance (expected - final), when
    /// there is one.
    pub lost_amount: Option<i128>,
    /// More paid out than ever held.
    pub overdraft: bool,
    /// Repeated balances, or `None` when not checked.
    pub duplicates: Option<u64>,
    /// Why duplicates were not checked, or a remark about them.
    pub duplicates_note: Option<String>,
    /// Answers off the expected ladder, when checked.
    pub unexpected_balances: Option<u64>,
    /// Acknowledged operations.
    pub acknowledged: Totals,
    /// Operations that may or may not have been applied.
    pub indeterminate: Totals,
    /// Attempts sent again (`--retry`).
    pub retries: u64,
    /// Waits for a 503's `Retry-After` before the next attempt or request.
    pub retry_after_waits: u64,
    /// The first redirect answered and not followed: its status and `Location`.
    pub redirect: Option<String>,
    /// Operations sent again without an idempotency key after an attempt that may have been
    /// applied: each may have paid twice.
    pub resent_without_key: Totals,
    /// No lost amount, no overdraft, no duplicate, no other client.
    pub consistent: bool,
    /// What the run concludes.
    pub verdict: Conclusion,
    /// Why the run proves nothing, when it does not.
    pub inconclusive_reason: Option<String>,
    /// Why the balance could not be read after the run, when the server stopped answering.
    pub server_lost: Option<String>,
    /// What the server answered the balance read after the run with, when that was no balance.
    pub protocol_error: Option<String>,
    /// The checks the answers allowed.
    pub checks: Vec<String>,
    /// Whether the acknowledgements reported a balance.
    pub answers_carry_balance: bool,
    /// Failed requests over all requests.
    pub error_rate: f64,
    /// The most `error_rate` may be, if a limit was set.
    pub max_error_rate: Option<f64>,
    /// `error_rate` is over `max_error_rate`.
    pub too_many_errors: bool,
    /// The run was interrupted; requests in flight were counted as indeterminate.
    pub interrupted: bool,
    /// Why the run ended before its count or duration, if it did.
    pub stopped_early: Option<String>,
    /// The server's `/stats` compared with the client, if the server has it.
    pub server_stats: Option<CrossCheck>,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Fastest answer.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest answer.
    pub max: f64,
}

/// Counts and sums of deposits and withdrawals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Number of deposits.
    pub deposits: u64,
    /// Their sum.
    pub deposit_sum: i128,
    /// Number of withdrawals.
    pub withdrawals: u64,
    /// Their sum.
    pub withdrawal_sum: i128,
}

impl Totals {
    fn new(deposits: Tally, withdrawals: Tally) -> Self {
        Totals {
            deposits: deposits.count,
            deposit_sum: deposits.sum,
            withdrawals: withdrawals.count,
            withdrawal_sum: withdrawals.sum,
        }
    }
}

/// How a run ended, besides its stats and verdict.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Ending {
    /// The acknowledgements reported a balance.
    pub answers_carry_balance: bool,
    /// `--max-error-rate`.
    pub max_error_rate: Option<f64>,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
    /// Why the balance could not be read after the run, if the server stopped answering.
    pub server_lost: Option<String>,
    /// What the balance read after the run was answered with, if that was no balance.
    pub protocol_error: Option<String>,
    /// Why the workers stopped before the run's count or duration, if they did.
    pub stopped_early: Option<String>,
}

impl Summary {
    /// Computes the summary from the merged stats, the verdict and the cross-check.
    pub(crate) fn new(
        stats: &Stats,
        elapsed_s: f64,
        verdict: &Verdict,
        server_stats: Option<CrossCheck>,
        ending: Ending,
    ) -> Self {
        let (conclusion, inconclusive_reason) = Conclusion::of(
            verdict,
            server_stats.as_ref(),
            ending.protocol_error.as_deref(),
        );
        let checks = checks(verdict, server_stats.as_ref());
        let error_rate = share(stats.errors.total(), stats.requests);
        let too_many_errors = ending
            .max_error_rate
            .is_some_and(|limit| error_rate > limit);
        let (duplicates_note, unexpected_balances) = duplicates_note(&verdict.duplicates);
        Summary {
            requests: stats.requests,
            duration_s: elapsed_s,
            rps: if elapsed_s > 0.0 {
                stats.requests as f64 / elapsed_s
            } else {
                0.0
            },
            ok: stats.ok,
            refused: stats.refused,
            errors: stats.errors,
            status_codes: stats
                .status_codes
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            latency_ms: latency(&stats.latency),
            initial_balance: verdict.initial,
            expected_balance: verdict.expected_exact(),
            expected_min: verdict.expected_min,
            expected_max: verdict.expected_max,
            final_balance: verdict.final_balance,
            lost_amount: verdict.lost_amount,
            overdraft: verdict.overdraft,
            duplicates: verdict.duplicates.count(),
            duplicates_note,
            unexpected_balances,
            acknowledged: Totals::new(stats.deposits, stats.withdrawals),
            indeterminate: Totals::new(
                stats.indeterminate_deposits,
                stats.indeterminate_withdrawals,
            ),
            retries: stats.retries,
            retry_after_waits: stats.retry_after_waits,
            redirect: stats.redirect.clone(),
            resent_without_key: Totals::new(stats.resent_deposits, stats.resent_withdrawals),
            consistent: conclusion == Conclusion::Consistent,
            verdict: conclusion,
            inconclusive_reason,
            server_lost: ending.server_lost,
            protocol_error: ending.protocol_error,
            checks,
            answers_carry_balance: ending.answers_carry_balance,
            error_rate,
            max_error_rate: ending.max_error_rate,
            too_many_errors,
            interrupted: ending.interrupted,
            stopped_early: ending.stopped_early,
            server_stats,
        }
    }

    /// The exact expected balance, or the range when indeterminate requests make it one.
    pub fn expected_text(&self) -> String {
        match self.expected_balance {
            Some(exact) => exact.to_string(),
            None => format!("{}..={}", self.expected_min, self.expected_max),
        }
    }

    /// Operations sent again without a key after an attempt that may have been applied.
    pub(crate) fn resent_unkeyed(&self) -> u64 {
        self.resent_without_key.deposits + self.resent_without_key.withdrawals
    }
}

/// The checks the answers allowed.
fn checks(verdict: &Verdict, server_stats: Option<&CrossCheck>) -> Vec<String> {
    let mut checks = Vec::new();
    if verdict.final_balance.is_some() {
        checks.push("expected range".to_string());
    }
    checks.push("overdraft".to_string());
    if verdict.duplicates.count().is_some() {
        checks.push("duplicate answers".to_string());
    }
    if server_stats.is_some() {
        checks.push("server /stats".to_string());
    }
    checks
}

/// Why duplicates were not checked or what they show, and the answers off the ladder.
fn duplicates_note(duplicates: &Duplicates) -> (Option<String>, Option<u64>) {
    match duplicates {
        Duplicates::NotChecked(reason) => (Some(format!("not checked: {reason}")), None),
        Duplicates::Checked { unexpected: 0, .. } => (None, Some(0)),
        Duplicates::Checked { unexpected, .. } => (
            Some(format!(
                "{unexpected} answers were not on the ladder before + k*amount: is another client using the account?"
            )),
            Some(*unexpected),
        ),
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn share(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// The percentiles of a latency histogram (microseconds) in milliseconds.
pub(crate) fn latency(histogram: &hdrhistogram::Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        min: ms(histogram.min()),
        p50: ms(histogram.value_at_quantile(0.5)),
        p90: ms(histogram.value_at_quantile(0.9)),
        p99: ms(histogram.value_at_quantile(0.99)),
        p99_9: ms(histogram.value_at_quantile(0.999)),
        max: ms(histogram.max()),
    }
}
