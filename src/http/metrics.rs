//! Prometheus metrics at `GET /metrics`: requests by route and status, what deposits and
//! withdrawals did, lost updates and retries, and how long deposits and withdrawals took.
//!
//! The request path pays a few atomic additions and nothing else: one counter in a fixed array
//! indexed by route and status code, and for a deposit or withdrawal one bucket of a fixed-bucket
//! histogram and its sum. No lock, no map, no allocation. The counters are sharded by thread, each
//! shard on its own cache lines, so that the runtime's worker threads never contend for one line;
//! a scrape adds the shards up. Everything else is worked out when
//! Prometheus scrapes: the outcomes from the status counts of the two money routes (racebank's
//! statuses say what happened: 2xx applied, 409 refused, 500 unknown, any other not applied), lost
//! updates and retries from the account's ledger, which keeps them anyway. prometheus-client only
//! encodes the answer (OpenMetrics text); its `Family` (a lock and a map lookup per increment) and
//! its `Histogram` (a mutex per observation) stay off the request path.
//!
//! Not counted: the answers hyper gives by itself before a request reaches the server's code (400 for
//! a malformed head, 431), which never become requests. The ledger's counters start again at a
//! `POST /reset`; Prometheus reads a counter that went down as a reset.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::domain::ledger::Stats;
use crate::wire::bank::{paths as bank, BankStats};
use crate::wire::paths;

/// The content type of the scrape: OpenMetrics text, which Prometheus reads.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/deposit`.
    Deposit,
    /// `/withdraw`.
    Withdraw,
    /// `/balance`.
    Balance,
    /// `/stats`.
    Stats,
    /// `/reset`.
    Reset,
    /// `/healthz`.
    Healthz,
    /// `/readyz`.
    Readyz,
    /// `/metrics`.
    Metrics,
    /// `/openapi.json`.
    OpenApi,
    /// The live page: `/` and `/live/...`.
    Live,
    /// `/transfers`.
    Transfers,
    /// `/accounts` and every `/accounts/...`.
    Accounts,
    /// `/bank/reset`.
    BankReset,
    /// Any other path (answered 404).
    Other,
}

impl Route {
    const ALL: [Route; 14] = [
        Route::Deposit,
        Route::Withdraw,
        Route::Balance,
        Route::Stats,
        Route::Reset,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
        Route::Live,
        Route::Transfers,
        Route::Accounts,
        Route::BankReset,
        Route::Other,
    ];

    /// The route of a request path. A handful of string comparisons.
    #[inline]
    pub(crate) fn of(path: &str) -> Route {
        match path {
            paths::DEPOSIT => Route::Deposit,
            paths::WITHDRAW => Route::Withdraw,
            paths::BALANCE => Route::Balance,
            paths::STATS => Route::Stats,
            paths::RESET => Route::Reset,
            paths::HEALTHZ => Route::Healthz,
            paths::READYZ => Route::Readyz,
            paths::METRICS => Route::Metrics,
            paths::OPENAPI => Route::OpenApi,
            "/" => Route::Live,
            bank::TRANSFERS => Route::Transfers,
            bank::ACCOUNTS => Route::Accounts,
            bank::RESET => Route::BankReset,
            _ if path.starts_with("/live/") => Route::Live,
            _ if path.starts_with("/accounts/") => Route::Accounts,
            _ => Route::Other,
        }
    }

    /// The `route` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Deposit => "deposit",
            Route::Withdraw => "withdraw",
            Route::Balance => "balance",
            Route::Stats => "stats",
            Route::Reset => "reset",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Live => "live",
            Route::Transfers => "transfers",
            Route::Accounts => "accounts",
            Route::BankReset => "bank_reset",
            Route::Other => "other",
        }
    }

    /// The index of a deposit's or withdrawal's latency histogram; `None` for the other routes,
    /// which are not timed.
    #[inline]
    pub(crate) fn timed(self) -> Option<usize> {
        match self {
            Route::Deposit => Some(0),
            Route::Withdraw => Some(1),
            _ => None,
        }
    }
}

/// The statuses counted one by one: every status racebank's code answers (200 and each problem
/// type's, [`crate::wire::ProblemType::status`]); anything else is counted as `other`.
const STATUSES: [u16; 13] = [
    200, 400, 404, 405, 408, 409, 413, 415, 421, 422, 500, 501, 503,
];

/// The slot of `status`: its place in [`STATUSES`], or the last slot, `other`.
#[inline]
fn status_slot(status: u16) -> usize {
    match status {
        200 => 0,
        400 => 1,
        404 => 2,
        405 => 3,
        408 => 4,
        409 => 5,
        413 => 6,
        415 => 7,
        421 => 8,
        422 => 9,
        500 => 10,
        501 => 11,
        503 => 12,
        _ => STATUSES.len(),
    }
}

/// Shards of counters; threads past this many share them.
const SHARDS: usize = 16;

/// This thread's shard: threads take the next one the first time they count.
#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// The latency buckets' upper bounds, in nanoseconds: 100 µs to 10 s, about three per decade.
const BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram with fixed buckets: one more counter than bounds, for `+Inf`.
#[derive(Debug)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    #[inline]
    fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(BUCKETS_NS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// One thread's counters, aligned so that no two shards share a cache line (128 bytes: two lines
/// on CPUs that fetch lines in pairs).
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    /// `requests[route][status_slot(status)]`.
    requests: [[AtomicU64; STATUSES.len() + 1]; Route::ALL.len()],
    /// Deposits', then withdrawals' latency.
    latency: [Histogram; 2],
}

impl Shard {
    fn new() -> Self {
        Shard {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: [Histogram::new(), Histogram::new()],
        }
    }
}

/// Every count the request path keeps, shared by all connections of one server.
#[derive(Debug)]
pub(crate) struct Metrics {
    shards: Box<[Shard; SHARDS]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All counts at zero.
    pub(crate) fn new() -> Self {
        Metrics {
            shards: Box::new(std::array::from_fn(|_| Shard::new())),
        }
    }

    /// Counts one answer on `route` with `status`, and for a deposit or withdrawal how long it
    /// took.
    #[inline]
    pub(crate) fn record(&self, route: Route, status: u16, elapsed: Option<Duration>) {
        let shard = &self.shards[shard_index()];
        shard.requests[route as usize][status_slot(status)].fetch_add(1, Ordering::Relaxed);
        if let (Some(histogram), Some(elapsed)) = (route.timed(), elapsed) {
            shard.latency[histogram].observe(elapsed);
        }
    }

    /// The answers counted on `route` with `status` (statuses racebank never answers are counted
    /// together).
    #[cfg(test)]
    pub(crate) fn requests(&self, route: Route, status: u16) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard.requests[route as usize][status_slot(status)].load(Ordering::Relaxed)
            })
            .sum()
    }

    /// The scrape: every metric in OpenMetrics text, with the ledger's counters when `stats` could
    /// be read.
    pub(crate) fn render(&self, stats: Option<&Stats>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot::take(self, stats)));
        let mut text = String::new();
        // Writing to a String cannot fail; an encoding error would be a bug in a name or label.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}

/// The counts read at one scrape, for prometheus-client to encode.
#[derive(Debug)]
struct Snapshot {
    /// `(route, status, count)` for every count above zero; status `None` is `other`.
    requests: Vec<(Route, Option<u16>, u64)>,
    /// Per histogram: per-bucket counts and the sum in seconds.
    latency: [(Vec<u64>, f64); 2],
    ledger: Option<Stats>,
}

impl Snapshot {
    fn take(metrics: &Metrics, stats: Option<&Stats>) -> Self {
        let shards = metrics.shards.iter();
        let mut requests = Vec::new();
        for route in Route::ALL {
            for slot in 0..=STATUSES.len() {
                let count = shards
                    .clone()
                    .map(|shard| shard.requests[route as usize][slot].load(Ordering::Relaxed))
                    .sum();
                if count > 0 {
                    requests.push((route, STATUSES.get(slot).copied(), count));
                }
            }
        }
        let latency = std::array::from_fn(|histogram| {
            let buckets = (0..=BUCKETS_NS.len())
                .map(|bucket| {
                    shards
                        .clone()
                        .map(|shard| {
                            shard.latency[histogram].buckets[bucket].load(Ordering::Relaxed)
                        })
                        .sum()
                })
                .collect();
            let sum_ns: u64 = shards
                .clone()
                .map(|shard| shard.latency[histogram].sum_ns.load(Ordering::Relaxed))
                .sum();
            (buckets, sum_ns as f64 / 1e9)
        });
        Snapshot {
            requests,
            latency,
            ledger: stats.cloned(),
        }
    }

    /// Deposits' or withdrawals' answers by outcome, from their status counts.
    fn outcomes(&self, route: Route) -> [(&'static str, u64); 4] {
        let mut outcomes = [
            ("applied", 0),
            ("refused", 0),
            ("not_applied", 0),
            ("unknown", 0),
        ];
        for &(counted, status, count) in &self.requests {
            if counted != route {
                continue;
            }
            let outcome = match status {
                Some(200..=299) => 0,
                Some(409) => 1,
                Some(500) => 3,
                _ => 2,
            };
            outcomes[outcome].1 += count;
        }
        outcomes
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_requests(&mut encoder)?;
        self.encode_outcomes(&mut encoder)?;
        self.encode_latency(&mut encoder)?;
        match &self.ledger {
            Some(ledger) => encode_ledger(ledger, &mut encoder),
            None => Ok(()),
        }
    }
}

impl Snapshot {
    /// `racebank_http_requests`: answers by route and status.
    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "racebank_http_requests",
            "Answers by route and HTTP status.",
            None,
            MetricType::Counter,
        )?;
        for &(route, status, count) in &self.requests {
            let status = status.map_or_else(|| "other".to_string(), |status| status.to_string());
            let labels = [("route", route.name()), ("status", &status)];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// `racebank_operations`: deposits and withdrawals by outcome.
    fn encode_outcomes(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "racebank_operations",
            "Deposits and withdrawals by outcome: applied (2xx), refused by the funds check (409), \
             unknown (500: the store failed after the write was sent), not_applied (any other).",
            None,
            MetricType::Counter,
        )?;
        for (route, op) in [(Route::Deposit, "deposit"), (Route::Withdraw, "withdraw")] {
            for (outcome, count) in self.outcomes(route) {
                let labels = [("op", op), ("outcome", outcome)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    /// `racebank_operation_duration_seconds`: the histograms of deposits and withdrawals.
    fn encode_latency(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "racebank_operation_duration_seconds",
            "How long deposits and withdrawals took, from the request's head to its answer.",
            None,
            MetricType::Histogram,
        )?;
        for (op, (buckets, sum)) in ["deposit", "withdraw"].into_iter().zip(&self.latency) {
            let bounds = BUCKETS_NS
                .iter()
                .map(|&ns| ns as f64 / 1e9)
                .chain([f64::MAX]);
            let buckets: Vec<(f64, u64)> = bounds.zip(buckets.iter().copied()).collect();
            let count = buckets.iter().map(|(_, count)| count).sum();
            let labels = [("op", op)];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(*sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// The ledger's counters and the balances, when the store answered.
fn encode_ledger(ledger: &Stats, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    counter(
        encoder,
        "racebank_lost_updates",
        "Writes that replaced a balance other than the one they read.",
        ledger.lost_updates,
    )?;
    counter(
        encoder,
        "racebank_lost_removed_minor_units",
        "Money removed by erasing writes (erased deposits), in minor units.",
        u64::try_from(ledger.lost_removed).unwrap_or(u64::MAX),
    )?;
    counter(
        encoder,
        "racebank_lost_added_minor_units",
        "Money added by erasing writes (erased withdrawals), in minor units.",
        u64::try_from(ledger.lost_added).unwrap_or(u64::MAX),
    )?;
    counter(
        encoder,
        "racebank_retries",
        "Optimistic conflicts redone.",
        ledger.retries,
    )?;
    counter(
        encoder,
        "racebank_retries_exhausted",
        "Requests that gave up after --max-retries conflicts.",
        ledger.retries_exhausted,
    )?;
    gauge(
        encoder,
        "racebank_balance_minor_units",
        "The balance now.",
        ledger.balance as f64,
    )?;
    gauge(
        encoder,
        "racebank_expected_balance_minor_units",
        "The balance if nothing had been lost.",
        ledger.expected_balance as f64,
    )?;
    match &ledger.bank {
        Some(bank) => encode_bank(bank, encoder),
        None => Ok(()),
    }
}

/// The bank's accounting, when the server opened a bank.
fn encode_bank(bank: &BankStats, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let units = |sum: i128| u64::try_from(sum).unwrap_or(u64::MAX);
    counter(
        encoder,
        "racebank_bank_transfers",
        "Transfers acknowledged.",
        bank.transfers,
    )?;
    counter(
        encoder,
        "racebank_bank_money_created_minor_units",
        "Money created by erasing writes (erased debits), bank-wide, in minor units.",
        units(bank.money_created),
    )?;
    counter(
        encoder,
        "racebank_bank_money_destroyed_minor_units",
        "Money destroyed by erasing writes (erased credits), bank-wide, in minor units.",
        units(bank.money_destroyed),
    )?;
    counter(
        encoder,
        "racebank_bank_deadlocks",
        "Deadlocks detected.",
        bank.deadlocks,
    )?;
    counter(
        encoder,
        "racebank_bank_retries",
        "Sections redone after a conflict.",
        bank.retries,
    )?;
    gauge(
        encoder,
        "racebank_bank_total_minor_units",
        "Every balance of the bank, summed, now.",
        bank.total as f64,
    )?;
    gauge(
        encoder,
        "racebank_bank_expected_total_minor_units",
        "The bank's total if nothing had been lost: opening plus deposits minus withdrawals.",
        bank.expected_total as f64,
    )?;
    gauge(
        encoder,
        "racebank_bank_households_below_zero",
        "Households whose total is below zero now (write skew).",
        bank.households_below_zero as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_has_its_route_and_anything_else_is_other() {
        for (path, route) in [
            ("/deposit", Route::Deposit),
            ("/withdraw", Route::Withdraw),
            ("/balance", Route::Balance),
            ("/stats", Route::Stats),
            ("/reset", Route::Reset),
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/metrics", Route::Metrics),
            ("/openapi.json", Route::OpenApi),
            ("/", Route::Live),
            ("/live/events", Route::Live),
            ("/transfers", Route::Transfers),
            ("/accounts", Route::Accounts),
            ("/accounts/a/deposit", Route::Accounts),
            ("/bank/reset", Route::BankReset),
            ("/deposit/", Route::Other),
            ("/nope", Route::Other),
        ] {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }

    #[test]
    fn a_latency_lands_in_the_first_bucket_that_holds_it() {
        let metrics = Metrics::new();
        for micros in [50, 100, 101, 20_000_000] {
            metrics.record(Route::Deposit, 200, Some(Duration::from_micros(micros)));
        }
        let text = metrics.render(None);
        for line in [
            r#"racebank_operation_duration_seconds_bucket{le="0.0001",op="deposit"} 2"#,
            r#"racebank_operation_duration_seconds_bucket{le="0.00025",op="deposit"} 3"#,
            r#"racebank_operation_duration_seconds_bucket{le="10.0",op="deposit"} 3"#,
            r#"racebank_operation_duration_seconds_bucket{le="+Inf",op="deposit"} 4"#,
            r#"racebank_operation_duration_seconds_count{op="deposit"} 4"#,
            r#"racebank_operation_duration_seconds_sum{op="deposit"} 20.000251"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn every_status_racebank_answers_has_its_own_count_and_others_share_one() {
        let statuses = std::iter::once(200).chain(
            crate::wire::ProblemType::ALL
                .into_iter()
                .map(crate::wire::ProblemType::status),
        );
        for status in statuses {
            assert!(STATUSES.contains(&status), "{status}");
            assert_eq!(STATUSES[status_slot(status)], status);
        }
        let metrics = Metrics::new();
        metrics.record(Route::Other, 302, None);
        metrics.record(Route::Other, 599, None);
        assert_eq!(metrics.requests(Route::Other, 302), 2);
        assert!(metrics
            .render(None)
            .contains(r#"racebank_http_requests_total{route="other",status="other"} 2"#));
    }

    #[test]
    fn counts_from_every_thread_are_added_up() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..SHARDS + 3)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        metrics.record(Route::Balance, 200, None);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            metrics.requests(Route::Balance, 200),
            100 * (SHARDS as u64 + 3)
        );
    }
}
