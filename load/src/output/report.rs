//! The result of a run: one [`Report`] (what was sent, and its [`Summary`]), printed as aligned
//! text (like oha's summary) or as JSON.

use serde::Serialize;

use crate::check::verdict::Conclusion;
use crate::output::summary::Summary;
use crate::output::table::Fields;
use crate::output::{
    json, Render, EXIT_INCONCLUSIVE, EXIT_INCONSISTENT_ANSWERS, EXIT_INTERRUPTED, EXIT_LOST,
    EXIT_PROTOCOL_ERROR, EXIT_SERVER_LOST, EXIT_TOO_MANY_ERRORS,
};

/// The width of the names in the text, colon included.
const NAMES: usize = 18;

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
/// - `redirect`: null, or the first redirect answered and not followed (`307 to http://...`):
///   redirects are answers (not applied); `--follow-redirects` follows a 307 or 308 to the
///   same origin only.
/// - `retry_after_waits`: waits for a 503's `Retry-After` (at most 5 s, never past the deadline)
///   before the next attempt of an operation or the slot's next request.
/// - `consistent`: no lost amount, no overdraft, no duplicate, no other client, and at least one
///   operation acknowledged or refused.
/// - `verdict`: `consistent`, `lost` (money provably missing or extra), `inconsistent_answers`
///   (repeated balances, money not proved missing), `inconclusive` (another client, or no
///   evidence), `unknown` (the server stopped answering) or `protocol_error` (the balance read
///   after the run was answered with no balance); `inconclusive_reason`; `server_lost`: null, or
///   why the balance could not be read after the run; `protocol_error`: null, or what the
///   balance read after the run was answered with.
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
    /// What came of it (flattened too, after the setup).
    #[serde(flatten)]
    pub summary: Summary,
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

impl Render for Report {
    fn to_text(&self) -> String {
        [
            self.header(),
            self.latency(),
            self.status_codes(),
            self.errors(),
            self.verdict(),
        ]
        .concat()
    }

    fn to_json(&self) -> String {
        json(self)
    }

    /// 0 consistent, 1 lost, 3 inconclusive, 4 too many errors, 5 server lost, 6 inconsistent
    /// answers, 7 protocol error, 130 interrupted.
    fn exit_code(&self) -> u8 {
        let summary = &self.summary;
        if summary.interrupted {
            EXIT_INTERRUPTED
        } else if summary.verdict == Conclusion::Lost {
            EXIT_LOST
        } else if summary.verdict == Conclusion::InconsistentAnswers {
            EXIT_INCONSISTENT_ANSWERS
        } else if summary.verdict == Conclusion::ProtocolError {
            EXIT_PROTOCOL_ERROR
        } else if summary.verdict == Conclusion::Unknown {
            // Before the error rate: a dead server fails every request after it, and that is the
            // news, not the rate.
            EXIT_SERVER_LOST
        } else if summary.verdict == Conclusion::Inconclusive {
            EXIT_INCONCLUSIVE
        } else if summary.too_many_errors {
            EXIT_TOO_MANY_ERRORS
        } else {
            0
        }
    }
}

impl Report {
    /// What was sent, how long it took, and how it was answered.
    fn header(&self) -> String {
        let (s, setup) = (&self.summary, &self.setup);
        let mut f = Fields::new(NAMES);
        f.line("Target", &setup.urls.join(", "));
        if setup.urls.len() > 1 {
            f.line(
                "Replicas",
                &format!(
                    "{}: requests round robin; balance and /stats read from the first",
                    setup.urls.len()
                ),
            );
        }
        f.line(
            "Load",
            &format!(
                "{} threads, concurrency {}, withdraw ratio {}, amount {}, seed {}",
                setup.threads, setup.concurrency, setup.withdraw_ratio, setup.amount, setup.seed
            ),
        );
        f.line("Requests", &s.requests.to_string());
        if s.interrupted {
            f.line(
                "Interrupted",
                &format!(
                    "yes (Ctrl-C): a partial run; {} requests in flight counted as indeterminate",
                    s.errors.interrupted
                ),
            );
        }
        if let Some(reason) = &s.server_lost {
            f.line(
                "Server lost",
                &format!("the server stopped answering: {reason}"),
            );
        }
        if let Some(reason) = &s.stopped_early {
            f.line("Stopped early", reason);
        }
        f.line("Duration", &format!("{:.4} s", s.duration_s));
        f.line("Requests/sec", &format!("{:.1}", s.rps));
        f.line(
            "Answers",
            &format!(
                "{} ok, {} refused (409), {} errors",
                s.ok,
                s.refused,
                s.errors.total()
            ),
        );
        if s.retries > 0 {
            let resent = s.resent_unkeyed();
            let note = if resent > 0 {
                format!(", {resent} of them without an idempotency key after an attempt that may have been applied: each may have paid twice")
            } else {
                String::new()
            };
            f.line(
                "Retries",
                &format!("{} attempts sent again{note}", s.retries),
            );
        }
        if s.retry_after_waits > 0 {
            f.line(
                "Retry-After",
                &format!(
                    "{} waits: 503 answers asked for time, given before the next attempt or request (at most 5 s each, never past the deadline)",
                    s.retry_after_waits
                ),
            );
        }
        format!("Summary:\n{}", f.render())
    }

    /// The latency percentiles.
    fn latency(&self) -> String {
        let l = &self.summary.latency_ms;
        let mut f = Fields::new(NAMES);
        for (name, value) in [
            ("min", l.min),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("p99.9", l.p99_9),
            ("max", l.max),
        ] {
            f.line(name, &format!("{value:.3} ms"));
        }
        format!("\nLatency:\n{}", f.render())
    }

    /// The answers by status code.
    fn status_codes(&self) -> String {
        let mut f = Fields::new(NAMES);
        if self.summary.status_codes.is_empty() {
            f.line("none", "no request was answered");
        }
        for (status, count) in &self.summary.status_codes {
            f.line(&format!("[{status}]"), &format!("{count} responses"));
        }
        format!("\nStatus codes:\n{}", f.render())
    }

    /// The failures by kind and the error rate, when there were any.
    fn errors(&self) -> String {
        let s = &self.summary;
        if s.errors.total() == 0 {
            return String::new();
        }
        let e = &s.errors;
        let mut f = Fields::new(NAMES);
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
                f.line(name, &format!("{count} ({meaning})"));
            }
        }
        if let Some(redirect) = &s.redirect {
            f.line(
                "redirect",
                &format!("{redirect}: not followed (only --follow-redirects follows a 307 or 308, to the same origin)"),
            );
        }
        let limit = match s.max_error_rate {
            Some(limit) if s.too_many_errors => {
                format!(": over --max-error-rate {limit}, the run FAILS")
            }
            Some(limit) => format!(" (--max-error-rate {limit})"),
            None => " (no --max-error-rate set: the verdict covers only the answered requests)"
                .to_string(),
        };
        f.line(
            "error rate",
            &format!("{:.1}%{limit}", s.error_rate * 100.0),
        );
        format!("\nErrors:\n{}", f.render())
    }

    /// The balances, the checks, and the conclusion.
    fn verdict(&self) -> String {
        let s = &self.summary;
        let mut f = Fields::new(NAMES);
        f.line("Initial balance", &s.initial_balance.to_string());
        let acknowledged = format!(
            "+{} in {} deposits, -{} in {} withdrawals",
            s.acknowledged.deposit_sum,
            s.acknowledged.deposits,
            s.acknowledged.withdrawal_sum,
            s.acknowledged.withdrawals
        );
        f.line("Acknowledged", &acknowledged);
        let indeterminate = s.indeterminate.deposits + s.indeterminate.withdrawals;
        let expected = if indeterminate > 0 {
            format!(
                "{} ({indeterminate} requests may or may not have been applied)",
                s.expected_text()
            )
        } else {
            s.expected_text()
        };
        f.line("Expected balance", &expected);
        let final_balance = match (s.final_balance, &s.protocol_error) {
            (Some(balance), _) => balance.to_string(),
            (None, Some(_)) => "unknown: the server answered it with no balance".to_string(),
            (None, None) => {
                "unknown: the server stopped answering, so it could not be read".to_string()
            }
        };
        f.line("Final balance", &final_balance);
        f.line("Lost amount", &self.lost_text());
        f.line("Overdraft", if s.overdraft { "yes" } else { "no" });
        let duplicates = match (s.duplicates, &s.duplicates_note) {
            (Some(count), None) => count.to_string(),
            (Some(count), Some(note)) => format!("{count}; {note}"),
            (None, Some(note)) => note.clone(),
            (None, None) => "not checked".to_string(),
        };
        f.line("Duplicate answers", &duplicates);
        self.server_stats(&mut f);
        let mut checks = s.checks.join(", ");
        if !s.answers_carry_balance {
            checks.push_str(" (the acknowledgements carry no balance: no duplicate check)");
        }
        f.line("Checks run", &checks);
        f.line("Consistent", &self.consistent_text());
        format!("\nVerdict:\n{}", f.render())
    }

    /// The lost amount, and which way it went.
    fn lost_text(&self) -> String {
        match self.summary.lost_amount {
            None => "unknown (no final balance)".to_string(),
            Some(0) => "0".to_string(),
            Some(amount) if amount > 0 => format!("{amount} (vanished)"),
            Some(amount) if self.summary.resent_unkeyed() > 0 => {
                format!("{amount} (appeared: retries without an idempotency key paid twice)")
            }
            Some(amount) => {
                format!("{amount} (appeared: paid out or credited more than acknowledged)")
            }
        }
    }

    /// The server's `/stats` next to the client's account, when it has one.
    fn server_stats(&self, f: &mut Fields) {
        let Some(check) = &self.summary.server_stats else {
            if self.summary.server_lost.is_some() {
                f.line("Server /stats", "not read: the server stopped answering");
            } else {
                f.line("Server /stats", "not available (skipped)");
            }
            return;
        };
        f.line(
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
            f.line(
                "Lost, gross",
                &format!(
                    "erasing writes removed {} and added {} (the net {} hides both)",
                    check.lost_removed, check.lost_added, check.lost_net
                ),
            );
        }
        f.line(
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

    /// The conclusion in words.
    fn consistent_text(&self) -> String {
        let s = &self.summary;
        match s.verdict {
            Conclusion::Consistent => "yes".to_string(),
            Conclusion::Lost
                if s.lost_amount.is_some_and(|lost| lost < 0) && s.resent_unkeyed() > 0 =>
            {
                "NO: money appeared: retries without an idempotency key applied operations twice"
                    .to_string()
            }
            Conclusion::Lost => "NO: the answers prove that updates were lost".to_string(),
            Conclusion::Inconclusive => format!(
                "INCONCLUSIVE: {}",
                s.inconclusive_reason
                    .as_deref()
                    .unwrap_or("another client was active")
            ),
            Conclusion::Unknown => format!(
                "UNKNOWN: the server stopped answering; a correct server would now hold {}",
                s.expected_text()
            ),
            Conclusion::InconsistentAnswers => format!(
                "NO: inconsistent answers: {} answers repeated a balance another acknowledgement reported, where every one must differ; {}",
                s.duplicates.unwrap_or(0),
                match s.lost_amount {
                    Some(_) => "the final balance is right, so no money is proved missing",
                    None => "without a final balance, no money is proved missing",
                }
            ),
            Conclusion::ProtocolError => format!(
                "PROTOCOL ERROR: the server answered the balance read after the run with no balance an account can hold ({}); a correct server would now hold {}",
                s.protocol_error.as_deref().unwrap_or("unreadable"),
                s.expected_text()
            ),
        }
    }
}
