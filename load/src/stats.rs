//! What one worker thread observed, kept locally during the run and merged at the end.
//!
//! Nothing here is shared while requests are in flight: each worker thread owns one [`Stats`], so
//! recording a response is a few additions and a histogram increment, with no lock and no atomic.
//! Memory does not grow with the run: a fixed-size latency histogram, counters, and one bit per
//! request for duplicate balances.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::ops::Kind;
use crate::seen::Seen;

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
    /// A 2xx answer whose body had no readable balance (counted as acknowledged).
    pub body: u64,
}

impl Errors {
    /// All errors.
    pub fn total(&self) -> u64 {
        self.timeout + self.connect + self.transport + self.status + self.body
    }

    fn merge(&mut self, other: Errors) {
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.transport += other.transport;
        self.status += other.status;
        self.body += other.body;
    }
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
        }
    }

    /// Records an HTTP answer with its status and latency.
    #[inline]
    pub fn record_status(&mut self, status: u16, latency: Duration) {
        self.latency
            .saturating_record(latency.as_micros().clamp(1, u128::from(HIGHEST_MICROS)) as u64);
        // Only the first answer with a new code allocates.
        *self.status_codes.entry(status).or_insert(0) += 1;
    }

    /// Records what a request did to the balance.
    #[inline]
    pub fn record_outcome(&mut self, kind: Kind, amount: i64, outcome: Outcome) {
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

    /// Adds another worker's observations.
    pub fn merge(&mut self, other: &Stats) {
        // Both histograms have the same bounds, so adding cannot fail; if it ever did, the
        // latencies would be incomplete, not wrong.
        let _ = self.latency.add(&other.latency);
        self.requests += other.requests;
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
        match (&mut self.seen, &other.seen) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.seen = Some(theirs.clone()),
            _ => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
