//! What one worker thread observed, kept locally during the run and merged at the end, and the
//! decision it rests on: was a request applied?
//!
//! Nothing here is shared while requests are in flight: each worker thread owns one [`Stats`], so
//! recording a response is a few additions and a histogram increment, with no lock and no atomic.
//! Memory does not grow with the run: a fixed-size latency histogram, counters, and one bit per
//! request for duplicate balances.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use racebank::wire::{Effect, ProblemType};

use crate::engine::connection::{Exchange, Hint};
use crate::engine::seen::{Ladder, Seen};
use crate::plan::api::BalancePointer;
use crate::plan::ops::{Kind, Op};

/// Latencies are recorded in microseconds, from 1 µs to one hour, with 3 significant digits.
const HIGHEST_MICROS: u64 = 3_600_000_000;

/// A count and a sum of amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their total, in minor units.
    pub sum: i128,
}

impl Tally {
    #[inline]
    fn add(&mut self, amount: i64) {
        self.count += 1;
        self.sum += i128::from(amount);
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// Requests that failed without an HTTP answer, or with an unexpected one, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Errors {
    /// No answer within `--timeout`: may have been applied.
    pub timeout: u64,
    /// The connection could not be made: never reached the server.
    pub connect: u64,
    /// Another transport failure (reset, closed mid-answer): may have been applied.
    pub transport: u64,
    /// An HTTP answer other than 2xx and 409.
    pub status: u64,
    /// A 2xx answer whose body had no readable balance, or was longer than the client reads
    /// (counted as acknowledged).
    pub body: u64,
    /// Still in flight when the run was interrupted: may have been applied.
    pub interrupted: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.timeout + self.connect + self.transport + self.status + self.body + self.interrupted
    }

    fn merge(&mut self, other: Errors) {
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.transport += other.transport;
        self.status += other.status;
        self.body += other.body;
        self.interrupted += other.interrupted;
    }
}

/// How a request failed, for the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within `--timeout`.
    Timeout,
    /// No connection could carry it.
    Connect,
    /// The connection failed after it was sent.
    Transport,
    /// An HTTP status other than 2xx and 409.
    Status,
    /// A 2xx answer without a readable balance.
    Body,
    /// Still in flight when the run was interrupted.
    Interrupted,
}

impl ErrorKind {
    /// The name used in `--history` and the report.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Transport => "transport",
            ErrorKind::Status => "status",
            ErrorKind::Body => "body",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

/// How to read the answers of a run: where the balance is, and the ladder it must sit on when
/// duplicates are checked.
#[derive(Debug, Clone)]
pub struct Reading {
    /// Where the balance is in an answer.
    pub pointer: BalancePointer,
    /// The balances a correct server can answer, when duplicates are checked.
    pub ladder: Option<Ladder>,
}

/// What became of one request, as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Applied, not applied or indeterminate.
    pub outcome: Outcome,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// The balance the answer reported.
    pub balance: Option<i64>,
    /// How it failed, if it did.
    pub error: Option<ErrorKind>,
}

impl Recorded {
    /// `ok`, `refused`, `error` or `indeterminate`.
    pub fn outcome_name(&self) -> &'static str {
        match (self.outcome, self.error) {
            (Outcome::Applied, _) => "ok",
            (Outcome::NotApplied, None) => "refused",
            (Outcome::NotApplied, Some(_)) => "error",
            (Outcome::Indeterminate, _) => "indeterminate",
        }
    }
}

/// What the attempts of an operation before its last one may have done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Earlier {
    /// One of them may have been applied.
    pub may_have_applied: bool,
    /// Every attempt carried the operation's idempotency key.
    pub keyed: bool,
}

impl Earlier {
    /// A single attempt: nothing before it.
    pub(crate) const NONE: Earlier = Earlier {
        may_have_applied: false,
        keyed: false,
    };
}

/// Whether a request changed the balance, as far as the client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged with 2xx: applied.
    Applied,
    /// Refused or rejected (4xx, the server's own 503 problem): not applied.
    NotApplied,
    /// Timed out, failed in transport, or an unknown 5xx: may or may not have been applied.
    Indeterminate,
}

/// Everything one worker observed.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of every request that got an HTTP answer, in microseconds.
    pub latency: Histogram<u64>,
    /// Requests sent and finished (answered or failed).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 409 answers: withdrawals refused for lack of funds.
    pub refused: u64,
    /// Failures by kind.
    pub errors: Errors,
    /// HTTP answers by status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Acknowledged deposits.
    pub deposits: Tally,
    /// Acknowledged withdrawals.
    pub withdrawals: Tally,
    /// Deposits that may or may not have been applied.
    pub indeterminate_deposits: Tally,
    /// Withdrawals that may or may not have been applied.
    pub indeterminate_withdrawals: Tally,
    /// Balances answered, when the run allows checking them for duplicates.
    pub seen: Option<Seen>,
    /// Answers whose body was longer than the client reads (also counted in `errors.body` when
    /// 2xx, in `errors.status` otherwise).
    pub oversized: u64,
    /// Attempts sent again (`--retry`).
    pub retries: u64,
    /// Waits for a 503's `Retry-After` before the next attempt, or the slot's next request.
    pub retry_after_waits: u64,
    /// The first redirect answered and not followed: its status and `Location`.
    pub redirect: Option<String>,
    /// Deposits sent again without an idempotency key after an attempt that may have been
    /// applied: each may have been applied once more.
    pub resent_deposits: Tally,
    /// The same for withdrawals.
    pub resent_withdrawals: Tally,
}

impl Stats {
    /// Empty stats; `check_duplicates` says whether answered balances are recorded.
    pub fn new(check_duplicates: bool) -> Self {
        Stats {
            latency: Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                .expect("the histogram bounds are constants that hdrhistogram accepts"),
            requests: 0,
            ok: 0,
            refused: 0,
            errors: Errors::default(),
            status_codes: BTreeMap::new(),
            deposits: Tally::default(),
            withdrawals: Tally::default(),
            indeterminate_deposits: Tally::default(),
            indeterminate_withdrawals: Tally::default(),
            seen: check_duplicates.then(Seen::new),
            oversized: 0,
            retries: 0,
            retry_after_waits: 0,
            redirect: None,
            resent_deposits: Tally::default(),
            resent_withdrawals: Tally::default(),
        }
    }

    /// Records what became of `op`, and returns it: whether it was applied is decided here.
    ///
    /// `limit` is the number of requests claimed so far, read only when a balance must be placed
    /// on the ladder.
    #[inline]
    pub fn record(
        &mut self,
        reading: &Reading,
        op: Op,
        exchange: Exchange,
        latency: Duration,
        limit: impl FnOnce() -> u64,
    ) -> Recorded {
        self.record_attempts(reading, op, exchange, latency, limit, Earlier::NONE)
    }

    /// Records what became of `op` after several attempts: `exchange` is the last one's, and
    /// `earlier` says what the ones before may have done.
    ///
    /// An operation is judged by all its attempts, not by the last alone: when an earlier one may
    /// have been applied (a 500 `outcome-unknown`, a connection broken after sending), a later
    /// "not applied" (a 503 `store-unavailable`, a refused connection) speaks only for itself,
    /// and the operation stays indeterminate. Only an acknowledgement settles it, or, when every
    /// attempt carried the same idempotency key, the key's own answer: a refusal under the key
    /// is the answer the earlier attempt would have left, had it applied anything.
    #[inline]
    pub(crate) fn record_attempts(
        &mut self,
        reading: &Reading,
        op: Op,
        exchange: Exchange,
        latency: Duration,
        limit: impl FnOnce() -> u64,
        earlier: Earlier,
    ) -> Recorded {
        let mut recorded = self.classify(reading, exchange, latency, limit);
        if earlier.may_have_applied && recorded.outcome == Outcome::NotApplied {
            // A refusal stays counted as a 409 answer; without the key it settles nothing.
            let refusal = recorded.error.is_none();
            if !(refusal && earlier.keyed) {
                recorded.outcome = Outcome::Indeterminate;
            }
        }
        self.record_outcome(op.kind, op.amount, recorded.outcome);
        recorded
    }

    /// The outcome of one exchange on its own, with its counters.
    #[inline]
    fn classify(
        &mut self,
        reading: &Reading,
        exchange: Exchange,
        latency: Duration,
        limit: impl FnOnce() -> u64,
    ) -> Recorded {
        match exchange {
            Exchange::Answer { status, body, hint } => {
                self.record_status(status.as_u16(), latency);
                if let (Some(Hint::Location(location)), None) = (hint, &self.redirect) {
                    self.redirect = Some(format!(
                        "{} to {}",
                        status.as_u16(),
                        String::from_utf8_lossy(location.as_bytes())
                    ));
                }
                self.record_answer(reading, status, body, limit)
            }
            Exchange::Oversized { status } => {
                self.record_status(status.as_u16(), latency);
                self.oversized += 1;
                self.record_answer(reading, status, None, limit)
            }
            Exchange::NotSent => {
                // The request never reached the server.
                self.errors.connect += 1;
                failed(Outcome::NotApplied, ErrorKind::Connect)
            }
            Exchange::TimedOut => {
                self.errors.timeout += 1;
                failed(Outcome::Indeterminate, ErrorKind::Timeout)
            }
            Exchange::Broken => {
                self.errors.transport += 1;
                failed(Outcome::Indeterminate, ErrorKind::Transport)
            }
        }
    }

    /// Records a request that was still in flight when the run was interrupted: it may or may
    /// not have been applied.
    pub fn record_interrupted(&mut self, op: Op) -> Recorded {
        self.errors.interrupted += 1;
        self.record_outcome(op.kind, op.amount, Outcome::Indeterminate);
        failed(Outcome::Indeterminate, ErrorKind::Interrupted)
    }

    /// Classifies an HTTP answer and, for an acknowledgement, records the balance it reported.
    #[inline]
    fn record_answer(
        &mut self,
        reading: &Reading,
        status: StatusCode,
        body: Option<Bytes>,
        limit: impl FnOnce() -> u64,
    ) -> Recorded {
        let code = Some(status.as_u16());
        if status.is_success() {
            self.ok += 1;
            let balance = body.and_then(|bytes| reading.pointer.read(&bytes));
            match (balance, reading.ladder, self.seen.as_mut()) {
                (Some(answer), Some(ladder), Some(seen)) => match ladder.index(answer, limit()) {
                    Some(step) => seen.mark(step),
                    None => seen.mark_unexpected(),
                },
                (Some(_), _, _) => {}
                (None, _, _) => self.errors.body += 1,
            }
            return Recorded {
                outcome: Outcome::Applied,
                status: code,
                balance,
                error: balance.is_none().then_some(ErrorKind::Body),
            };
        }
        let problem = body.as_deref().and_then(ProblemType::of_document);
        // racebank's 409 `idempotency-key-in-use`: this attempt wrote nothing, but the key's
        // other request (an earlier attempt of the same operation) may have.
        let key_in_use = problem == Some(ProblemType::IdempotencyKeyInUse);
        if (status == StatusCode::CONFLICT && !key_in_use)
            || problem.map(ProblemType::effect) == Some(Effect::Refused)
        {
            self.refused += 1;
            return Recorded {
                outcome: Outcome::NotApplied,
                status: code,
                balance: None,
                error: None,
            };
        }
        self.errors.status += 1;
        // A 5xx may have been applied before it failed, unless it is one of racebank's problems
        // answered before anything was written. A 4xx (408 included: racebank drops a timed-out
        // request before it writes) and a redirect, which is not followed, were not.
        let outcome = if key_in_use
            || (status.is_server_error()
                && problem.map(ProblemType::effect) != Some(Effect::NotApplied))
        {
            Outcome::Indeterminate
        } else {
            Outcome::NotApplied
        };
        Recorded {
            outcome,
            status: code,
            balance: None,
            error: Some(ErrorKind::Status),
        }
    }

    /// Records an HTTP answer with its status and latency.
    #[inline]
    pub fn record_status(&mut self, status: u16, latency: Duration) {
        self.latency.saturating_record(
            u64::try_from(latency.as_micros().clamp(1, u128::from(HIGHEST_MICROS)))
                .unwrap_or(HIGHEST_MICROS),
        );
        // Only the first answer with a new code allocates.
        *self.status_codes.entry(status).or_insert(0) += 1;
    }

    /// Records what a request did to the balance.
    #[inline]
    pub(crate) fn record_outcome(&mut self, kind: Kind, amount: i64, outcome: Outcome) {
        self.requests += 1;
        let tally = match (outcome, kind) {
            (Outcome::Applied, Kind::Deposit) => &mut self.deposits,
            (Outcome::Applied, Kind::Withdraw) => &mut self.withdrawals,
            (Outcome::Indeterminate, Kind::Deposit) => &mut self.indeterminate_deposits,
            (Outcome::Indeterminate, Kind::Withdraw) => &mut self.indeterminate_withdrawals,
            (Outcome::NotApplied, _) => return,
        };
        tally.add(amount);
    }

    /// Records that `op` is sent again; `may_pay_twice` when it carries no idempotency key and
    /// the attempt before may have been applied.
    pub(crate) fn record_retry(&mut self, kind: Kind, amount: i64, may_pay_twice: bool) {
        self.retries += 1;
        if may_pay_twice {
            match kind {
                Kind::Deposit => self.resent_deposits.add(amount),
                Kind::Withdraw => self.resent_withdrawals.add(amount),
            }
        }
    }

    /// Adds another worker's observations.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail; if it ever did, the
        // latencies would be incomplete, not wrong.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
        self.oversized += other.oversized;
        self.ok += other.ok;
        self.refused += other.refused;
        self.errors.merge(other.errors);
        for (status, count) in &other.status_codes {
            *self.status_codes.entry(*status).or_insert(0) += count;
        }
        self.deposits.merge(other.deposits);
        self.withdrawals.merge(other.withdrawals);
        self.indeterminate_deposits
            .merge(other.indeterminate_deposits);
        self.indeterminate_withdrawals
            .merge(other.indeterminate_withdrawals);
        self.retries += other.retries;
        self.retry_after_waits += other.retry_after_waits;
        if self.redirect.is_none() {
            self.redirect.clone_from(&other.redirect);
        }
        self.resent_deposits.merge(other.resent_deposits);
        self.resent_withdrawals.merge(other.resent_withdrawals);
        match (&mut self.seen, &other.seen) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.seen = Some(theirs.clone()),
            _ => {}
        }
    }

    /// When no acknowledgement carried a balance, the API simply does not send one: those are then
    /// not errors, and there is nothing to check for duplicates. Returns whether that is the case.
    /// A body too long to read is never forgiven: that is a broken server, not an API's shape.
    pub fn forgive_missing_balances(&mut self) -> bool {
        if self.ok == 0 || self.errors.body != self.ok || self.oversized > 0 {
            return false;
        }
        self.errors.body = 0;
        self.seen = None;
        true
    }

    /// The net change acknowledged: deposits minus withdrawals.
    pub fn acknowledged_net(&self) -> i128 {
        self.deposits.sum - self.withdrawals.sum
    }

    /// Requests that may or may not have been applied.
    pub fn indeterminate(&self) -> u64 {
        self.indeterminate_deposits.count + self.indeterminate_withdrawals.count
    }
}

fn failed(outcome: Outcome, error: ErrorKind) -> Recorded {
    Recorded {
        outcome,
        status: None,
        balance: None,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use racebank::Problem;

    const DEPOSIT: Op = Op {
        kind: Kind::Deposit,
        amount: 5,
    };

    fn answer(stats: &mut Stats, status: u16, body: &str) -> Recorded {
        let reading = Reading {
            pointer: BalancePointer::TopLevel,
            ladder: None,
        };
        let exchange = Exchange::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(Bytes::from(body.to_string())),
            hint: None,
        };
        stats.record(&reading, DEPOSIT, exchange, Duration::from_micros(10), || 1)
    }

    #[test]
    fn every_racebank_problem_is_not_applied_but_an_unknown_outcome_and_only_the_funds_check_refuses(
    ) {
        // The server's own documents, so a renamed URN or a changed status fails here.
        let problems = Problem::one_of_each();
        for problem in problems {
            let mut stats = Stats::new(false);
            let status = problem.status().as_u16();
            let recorded = answer(&mut stats, status, &problem.to_json().to_string());
            let effect = problem.problem_type().effect();
            // A key in use: this request wrote nothing, but its operation, under the same key,
            // may have been applied by the key's other request (its test is below).
            let key_in_use = problem.problem_type() == ProblemType::IdempotencyKeyInUse;
            let expected = match effect {
                Effect::Unknown => Outcome::Indeterminate,
                Effect::NotApplied if key_in_use => Outcome::Indeterminate,
                Effect::Refused | Effect::NotApplied => Outcome::NotApplied,
            };
            assert_eq!(recorded.outcome, expected, "{problem:?}");
            let refused = effect == Effect::Refused;
            assert_eq!(stats.refused, u64::from(refused), "{problem:?}");
            assert_eq!(stats.errors.status, u64::from(!refused), "{problem:?}");
            let unknown = effect == Effect::Unknown || key_in_use;
            assert_eq!(stats.indeterminate(), u64::from(unknown), "{problem:?}");
        }
    }

    #[test]
    fn an_unknown_5xx_may_have_been_applied_but_a_4xx_was_not() {
        let mut stats = Stats::new(false);
        assert_eq!(
            answer(&mut stats, 503, "busy").outcome,
            Outcome::Indeterminate
        );
        assert_eq!(answer(&mut stats, 500, "").outcome, Outcome::Indeterminate);
        assert_eq!(answer(&mut stats, 401, "").outcome, Outcome::NotApplied);
        assert_eq!(answer(&mut stats, 409, "").outcome_name(), "refused");
        let ok = answer(&mut stats, 200, r#"{"balance":5}"#);
        assert_eq!((ok.outcome_name(), ok.balance), ("ok", Some(5)));
        assert_eq!(stats.indeterminate_deposits, Tally { count: 2, sum: 10 });
        assert_eq!(stats.deposits, Tally { count: 1, sum: 5 });
    }

    #[test]
    fn a_key_in_use_leaves_the_operation_indeterminate_and_is_no_refusal() {
        // Its key's other request, an earlier attempt of the same operation, may have applied it.
        let mut stats = Stats::new(false);
        let document = Problem::IdempotencyKeyInUse("x".into())
            .to_json()
            .to_string();
        let recorded = answer(&mut stats, 409, &document);
        assert_eq!(recorded.outcome, Outcome::Indeterminate);
        assert_eq!((stats.refused, stats.errors.status), (0, 1));
    }

    #[test]
    fn an_earlier_attempt_that_may_have_applied_outweighs_a_later_not_applied() {
        let reading = Reading {
            pointer: BalancePointer::TopLevel,
            ladder: None,
        };
        let attempt = |status: u16, body: &str| Exchange::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(Bytes::from(body.to_string())),
            hint: None,
        };
        let unavailable = Problem::one_of_each()
            .into_iter()
            .find(|problem| problem.problem_type() == ProblemType::StoreUnavailable)
            .unwrap()
            .to_json()
            .to_string();
        let cases = [
            (
                "503 store-unavailable, no key",
                attempt(503, &unavailable),
                false,
                Outcome::Indeterminate,
            ),
            (
                "503 store-unavailable, keyed",
                attempt(503, &unavailable),
                true,
                Outcome::Indeterminate,
            ),
            (
                "refused connection",
                Exchange::NotSent,
                true,
                Outcome::Indeterminate,
            ),
            (
                "409 without a key",
                attempt(409, ""),
                false,
                Outcome::Indeterminate,
            ),
            (
                "409 under the key: settled",
                attempt(409, ""),
                true,
                Outcome::NotApplied,
            ),
            (
                "200: settled",
                attempt(200, r#"{"balance":5}"#),
                false,
                Outcome::Applied,
            ),
        ];
        for (case, exchange, keyed, expected) in cases {
            let mut stats = Stats::new(false);
            let earlier = Earlier {
                may_have_applied: true,
                keyed,
            };
            let recorded = stats.record_attempts(
                &reading,
                DEPOSIT,
                exchange,
                Duration::from_micros(10),
                || 1,
                earlier,
            );
            assert_eq!(recorded.outcome, expected, "{case}");
        }
    }

    #[test]
    fn merging_adds_counts_sums_and_latencies() {
        let mut a = Stats::new(false);
        a.record_status(200, Duration::from_micros(100));
        a.record_outcome(Kind::Deposit, 5, Outcome::Applied);
        a.ok += 1;
        let mut b = Stats::new(false);
        b.record_status(200, Duration::from_micros(300));
        b.record_outcome(Kind::Withdraw, 7, Outcome::Applied);
        b.record_status(409, Duration::from_micros(200));
        b.record_outcome(Kind::Withdraw, 9, Outcome::NotApplied);
        b.errors.timeout += 1;
        b.record_outcome(Kind::Deposit, 11, Outcome::Indeterminate);
        a.merge(&b);
        assert_eq!(a.requests, 4);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(a.status_codes, BTreeMap::from([(200, 2), (409, 1)]));
        assert_eq!(a.acknowledged_net(), 5 - 7);
        assert_eq!(a.indeterminate_deposits, Tally { count: 1, sum: 11 });
        assert_eq!(a.errors.total(), 1);
    }
}
