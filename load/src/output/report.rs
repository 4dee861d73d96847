//! The result of a run: one [`Report`], printed as aligned text (like oha's summary) or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::check::verdict::{Conclusion, CrossCheck, Duplicates, Verdict};
use crate::engine::stats::{Errors, Stats, Tally};

/// Exit status: the answers prove that updates were lost.
pub const EXIT_LOST: u8 = 1;
/// Exit status: bad flags, an unreachable server, refused credentials.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: another client changed the account, so the run proves nothing.
pub const EXIT_INCONCLUSIVE: u8 = 3;
/// Exit status: more requests failed than `--max-error-rate` allows.
pub const EXIT_TOO_MANY_ERRORS: u8 = 4;
/// Exit status: the server stopped answering before the final balance could be read, and the
/// answers alone prove nothing: what was acknowledged and what may have been is reported.
pub const EXIT_SERVER_LOST: u8 = 5;
/// Exit status: interrupted (Ctrl-C); the partial report is printed.
pub const EXIT_INTERRUPTED: u8 = 130;

/// One run, as printed by `--json`.
///
/// Fields of the JSON document:
/// - `url`, `seed`, `concurrency`, `threads`, `withdraw_ratio`, `amount`: what was sent.
/// - `requests`: requests finished (answered or failed); `duration_s`; `rps` = requests / duration.
/// - `ok` (2xx), `refused` (409), `errors` {`timeout`, `connect`, `transport`, `status`, `body`},
///   `status_codes` {"200": n, ...}.
/// - `latency_ms` {`min`, `p50`, `p90`, `p99`, `p99_9`, `max`} over answered requests.
/// - `initial_balance`, `final_balance`: read with `GET /balance` before and after
///   (`final_balance` null when the server stopped answering; `server_lost` says why).
/// - `expected_balance`: the exact expectation, or null when indeterminate requests make it a
///   range; `expected_min`, `expected_max`: the range (equal when exact).
/// - `lost_amount`: 0 when the final balance is in the range, else expected - final measured
///   from the nearest end (positive: money vanished; negative: money appeared); null without a
///   final balance.
/// - `overdraft`: acknowledged withdrawals exceed all the account could have held.
/// - `duplicates`: answers that repeated another answer's balance, or null when not checked;
///   `duplicates_note`: why not, or a remark; `unexpected_balances`: answers no correct server
///   could give in this run (null when not checked).
/// - `acknowledged` and `indeterminate`: {`deposits`, `deposit_sum`, `withdrawals`,
///   `withdrawal_sum`}.
/// - `retries`: attempts sent again (`--retry`); `resent_without_key`: the operations among them
///   sent again without an idempotency key after an attempt that may have been applied (the same
///   fields as `acknowledged`): each may have been applied twice.
/// - `consistent`: no lost amount, no overdraft, no duplicate, no other client.
/// - `verdict`: `consistent`, `lost`, `inconclusive` or `unknown` (the server stopped
///   answering); `inconclusive_reason`; `server_lost`: null, or why the balance could not be read
///   after the run.
/// - `checks`: the checks the answers allowed (`expected range`, `overdraft`, `duplicate
///   answers`, `server /stats`); `answers_carry_balance`.
/// - `error_rate`, `max_error_rate`, `too_many_errors`; `interrupted`; `stopped_early`: null, or
///   why the run ended before its count or duration (every connection refused: the server is gone).
/// - `server_stats`: null when the server has no `/stats`, else {`lost_updates`, `lost_net`,
///   `lost_removed`, `lost_added`, `server_net`, `client_net`, `client_net_min`, `client_net_max`,
///   `interference`, `server_expected_balance`, `client_expected_min`, `client_expected_max`,
///   `server_balance`, `retries`, `agrees`}.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was sent (flattened into the top level of the JSON).
    #[serde(flatten)]
    pub setup: Setup,
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

/// What the run was asked to do, for the report header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setup {
    /// The server's base URL (the first replica's).
    pub url: String,
    /// Every replica's URL, in `--url` order.
    pub urls: Vec<String>,
    /// The seed of the operation sequence.
    pub seed: u64,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// Worker threads.
    pub threads: usize,
    /// Share of withdrawals asked for.
    pub withdraw_ratio: f64,
    /// The amount spec (`5` or `1..100`).
    pub amount: String,
}

/// How a run ended, besides its stats and verdict.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ending {
    /// The acknowledgements reported a balance.
    pub answers_carry_balance: bool,
    /// `--max-error-rate`.
    pub max_error_rate: Option<f64>,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
    /// Why the balance could not be read after the run, if it could not.
    pub server_lost: Option<String>,
    /// Why the workers stopped before the run's count or duration, if they did.
    pub stopped_early: Option<String>,
}

impl Report {
    /// Assembles the report from the merged stats, the verdict and the cross-check.
    pub fn new(
        setup: Setup,
        stats: &Stats,
        elapsed_s: f64,
        verdict: &Verdict,
        server_stats: Option<CrossCheck>,
        ending: Ending,
    ) -> Self {
        let (conclusion, inconclusive_reason) = Conclusion::of(verdict, server_stats.as_ref());
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
        let error_rate = if stats.requests > 0 {
            stats.errors.total() as f64 / stats.requests as f64
        } else {
            0.0
        };
        let too_many_errors = ending
            .max_error_rate
            .is_some_and(|limit| error_rate > limit);
        let (duplicates_note, unexpected_balances) = match &verdict.duplicates {
            Duplicates::NotChecked(reason) => (Some(format!("not checked: {reason}")), None),
            Duplicates::Checked { unexpected: 0, .. } => (None, Some(0)),
            Duplicates::Checked { unexpected, .. } => (
                Some(format!(
                    "{unexpected} answers were not on the ladder before + k*amount: is another client using the account?"
                )),
                Some(*unexpected),
            ),
        };
        Report {
            setup,
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
            resent_without_key: Totals::new(stats.resent_deposits, stats.resent_withdrawals),
            consistent: conclusion == Conclusion::Consistent,
            verdict: conclusion,
            inconclusive_reason,
            server_lost: ending.server_lost,
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

    /// The exit status: 0 consistent, 1 lost, 3 inconclusive, 4 too many errors, 5 server lost,
    /// 130 interrupted.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            EXIT_INTERRUPTED
        } else if self.verdict == Conclusion::Lost {
            EXIT_LOST
        } else if self.verdict == Conclusion::Unknown {
            // Before the error rate: a dead server fails every request after it, and that is the
            // news, not the rate.
            EXIT_SERVER_LOST
        } else if self.verdict == Conclusion::Inconclusive {
            EXIT_INCONCLUSIVE
        } else if self.too_many_errors {
            EXIT_TOO_MANY_ERRORS
        } else {
            0
        }
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }

    /// The expected balance as text: one number or a range.
    pub fn expected_text(&self) -> String {
        match self.expected_balance {
            Some(exact) => exact.to_string(),
            None => format!("{}..={}", self.expected_min, self.expected_max),
        }
    }

    /// The report as aligned text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let errors = self.errors.total();
        let indeterminate = self.indeterminate.deposits + self.indeterminate.withdrawals;
        let _ = writeln!(out, "Summary:");
        let setup = &self.setup;
        line(&mut out, "Target", &setup.urls.join(", "));
        if setup.urls.len() > 1 {
            line(
                &mut out,
                "Replicas",
                &format!(
                    "{}: requests round robin; balance and /stats read from the first",
                    setup.urls.len()
                ),
            );
        }
        line(
            &mut out,
            "Load",
            &format!(
                "{} threads, concurrency {}, withdraw ratio {}, amount {}, seed {}",
                setup.threads, setup.concurrency, setup.withdraw_ratio, setup.amount, setup.seed
            ),
        );
        line(&mut out, "Requests", &self.requests.to_string());
        if self.interrupted {
            line(
                &mut out,
                "Interrupted",
                &format!(
                    "yes (Ctrl-C): a partial run; {} requests in flight counted as indeterminate",
                    self.errors.interrupted
                ),
            );
        }
        if let Some(reason) = &self.server_lost {
            line(
                &mut out,
                "Server lost",
                &format!("the server stopped answering: {reason}"),
            );
        }
        if let Some(reason) = &self.stopped_early {
            line(&mut out, "Stopped early", reason);
        }
        line(&mut out, "Duration", &format!("{:.4} s", self.duration_s));
        line(&mut out, "Requests/sec", &format!("{:.1}", self.rps));
        line(
            &mut out,
            "Answers",
            &format!(
                "{} ok, {} refused (409), {} errors",
                self.ok, self.refused, errors
            ),
        );
        if self.retries > 0 {
            let resent = self.resent_without_key.deposits + self.resent_without_key.withdrawals;
            let note = if resent > 0 {
                format!(", {resent} of them without an idempotency key after an attempt that may have been applied: each may have paid twice")
            } else {
                String::new()
            };
            line(
                &mut out,
                "Retries",
                &format!("{} attempts sent again{note}", self.retries),
            );
        }
        let _ = writeln!(out, "\nLatency:");
        let l = &self.latency_ms;
        for (name, value) in [
            ("min", l.min),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p99_9),
            ("max", l.max),
        ] {
            line(&mut out, name, &format!("{value:.3} ms"));
        }
        let _ = writeln!(out, "\nStatus codes:");
        if self.status_codes.is_empty() {
            line(&mut out, "none", "no request was answered");
        }
        for (status, count) in &self.status_codes {
            line(
                &mut out,
                &format!("[{status}]"),
                &format!("{count} responses"),
            );
        }
        if errors > 0 {
            let _ = writeln!(out, "\nErrors:");
            let e = &self.errors;
            for (name, count, meaning) in [
                ("timeout", e.timeout, "may have been applied"),
                ("connect", e.connect, "never reached the server"),
                ("transport", e.transport, "may have been applied"),
                (
                    "http status",
                    e.status,
                    "4xx and known 503: not applied; other 5xx: may have been",
                ),
                (
                    "bad body",
                    e.body,
                    "acknowledged, balance unreadable or body over 64 KiB",
                ),
                (
                    "interrupted",
                    e.interrupted,
                    "in flight at Ctrl-C: may have been applied",
                ),
            ] {
                if count > 0 {
                    line(&mut out, name, &format!("{count} ({meaning})"));
                }
            }
            let limit = match self.max_error_rate {
                Some(limit) if self.too_many_errors => {
                    format!(": over --max-error-rate {limit}, the run FAILS")
                }
                Some(limit) => format!(" (--max-error-rate {limit})"),
                None => " (no --max-error-rate set: the verdict covers only the answered requests)"
                    .to_string(),
            };
            line(
                &mut out,
                "error rate",
                &format!("{:.1}%{limit}", self.error_rate * 100.0),
            );
        }
        let _ = writeln!(out, "\nVerdict:");
        line(
            &mut out,
            "Initial balance",
            &self.initial_balance.to_string(),
        );
        let acknowledged = format!(
            "+{} in {} deposits, -{} in {} withdrawals",
            self.acknowledged.deposit_sum,
            self.acknowledged.deposits,
            self.acknowledged.withdrawal_sum,
            self.acknowledged.withdrawals
        );
        line(&mut out, "Acknowledged", &acknowledged);
        let expected = if indeterminate > 0 {
            format!(
                "{} ({indeterminate} requests may or may not have been applied)",
                self.expected_text()
            )
        } else {
            self.expected_text()
        };
        line(&mut out, "Expected balance", &expected);
        let final_balance = match self.final_balance {
            Some(balance) => balance.to_string(),
            None => "unknown: the server stopped answering, so it could not be read".to_string(),
        };
        line(&mut out, "Final balance", &final_balance);
        let lost = match self.lost_amount {
            None => "unknown (no final balance)".to_string(),
            Some(0) => "0".to_string(),
            Some(amount) if amount > 0 => format!("{amount} (vanished)"),
            Some(amount)
                if self.resent_without_key.deposits + self.resent_without_key.withdrawals > 0 =>
            {
                format!("{amount} (appeared: retries without an idempotency key paid twice)")
            }
            Some(amount) => {
                format!("{amount} (appeared: paid out or credited more than acknowledged)")
            }
        };
        line(&mut out, "Lost amount", &lost);
        line(
            &mut out,
            "Overdraft",
            if self.overdraft { "yes" } else { "no" },
        );
        let duplicates = match (self.duplicates, &self.duplicates_note) {
            (Some(count), None) => count.to_string(),
            (Some(count), Some(note)) => format!("{count}; {note}"),
            (None, Some(note)) => note.clone(),
            (None, None) => "not checked".to_string(),
        };
        line(&mut out, "Duplicate answers", &duplicates);
        match &self.server_stats {
            None if self.server_lost.is_some() => line(
                &mut out,
                "Server /stats",
                "not read: the server stopped answering",
            ),
            None => line(&mut out, "Server /stats", "not available (skipped)"),
            Some(check) => {
                line(
                    &mut out,
                    "Server /stats",
                    &format!(
                        "{} lost updates erasing {}, net {} (client {}), expected {}, balance {}{}",
                        check.lost_updates,
                        check.lost_net,
                        check.server_net,
                        check.client_net,
                        check.server_expected_balance,
                        check.server_balance,
                        if check.retries > 0 {
                            format!(", {} retries", check.retries)
                        } else {
                            String::new()
                        }
                    ),
                );
                if check.lost_removed != 0 && check.lost_added != 0 {
                    line(
                        &mut out,
                        "Lost, gross",
                        &format!(
                            "erasing writes removed {} and added {} (the net {} hides both)",
                            check.lost_removed, check.lost_added, check.lost_net
                        ),
                    );
                }
                line(
                    &mut out,
                    "Server agrees",
                    if check.agrees {
                        "yes"
                    } else if check.interference {
                        "NO: it acknowledged changes this client did not send"
                    } else {
                        "NO: its counters do not match what the client saw"
                    },
                );
            }
        }
        let mut checks = self.checks.join(", ");
        if !self.answers_carry_balance {
            checks.push_str(" (the acknowledgements carry no balance: no duplicate check)");
        }
        line(&mut out, "Checks run", &checks);
        let consistent = match self.verdict {
            Conclusion::Consistent => "yes".to_string(),
            Conclusion::Lost
                if self.lost_amount.is_some_and(|lost| lost < 0)
                    && self.resent_without_key.deposits + self.resent_without_key.withdrawals
                        > 0 =>
            {
                "NO: money appeared: retries without an idempotency key applied operations twice"
                    .to_string()
            }
            Conclusion::Lost => "NO: the answers prove that updates were lost".to_string(),
            Conclusion::Inconclusive => format!(
                "INCONCLUSIVE: {}",
                self.inconclusive_reason
                    .as_deref()
                    .unwrap_or("another client was active")
            ),
            Conclusion::Unknown => format!(
                "UNKNOWN: the server stopped answering; a correct server would now hold {}",
                self.expected_text()
            ),
        };
        line(&mut out, "Consistent", &consistent);
        out
    }
}

fn line(out: &mut String, name: &str, value: &str) {
    let _ = writeln!(out, "  {:<18} {value}", format!("{name}:"));
}

fn latency(histogram: &hdrhistogram::Histogram<u64>) -> Latency {
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
