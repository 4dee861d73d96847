//! The hot loop: worker threads, each with its own single-threaded runtime, client and [`Stats`].
//!
//! This follows oha's fast path. Each of `--threads` OS threads runs a current-thread tokio runtime
//! with its own `reqwest::Client` (its own connection pool) and its share of the concurrency, as
//! local tasks. Tasks claim request indices from one shared atomic counter (or stop at a
//! deadline), so no lock is ever taken; they record into their thread's `Stats` through a
//! `RefCell` that is never held across an await. Request bodies are built once. The only shared
//! write per request is that `fetch_add`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::sync::oneshot;

use crate::ops::{Kind, Plan};
use crate::opts::AmountSpec;
use crate::seen::Ladder;
use crate::stats::{Outcome, Stats};

/// Widest amount range whose bodies are all built in advance.
const PRECOMPUTED_AMOUNTS: i64 = 10_000;

/// The body our server answers when optimistic mode gave up without changing anything.
const CONTENTION_PROBLEM: &[u8] = b"urn:racebank:problem:too-much-contention";

/// When the workers stop.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// When this many indices have been claimed.
    After(u64),
    /// When this instant has passed (requests in flight are finished).
    At(Instant),
}

/// Everything the workers need, shared read-only between threads.
#[derive(Debug)]
pub struct Job {
    /// `POST` target for deposits.
    pub deposit_url: Url,
    /// `POST` target for withdrawals.
    pub withdraw_url: Url,
    /// The operation sequence.
    pub plan: Plan,
    /// When to stop.
    pub stop: Stop,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The balances a correct server can answer, when duplicates are checked.
    pub ladder: Option<Ladder>,
    /// Request indices claimed so far (also read by the progress bar).
    pub claimed: Arc<AtomicU64>,
    bodies: Bodies,
}

impl Job {
    /// A job, with its request bodies built in advance.
    pub fn new(
        base: &Url,
        plan: Plan,
        stop: Stop,
        timeout: Duration,
        ladder: Option<Ladder>,
        claimed: Arc<AtomicU64>,
    ) -> anyhow::Result<Self> {
        Ok(Job {
            deposit_url: endpoint(base, "deposit")?,
            withdraw_url: endpoint(base, "withdraw")?,
            bodies: Bodies::new(plan.amounts()),
            plan,
            stop,
            timeout,
            ladder,
            claimed,
        })
    }
}

/// `base` joined with `path`, keeping any path prefix `base` has.
pub fn endpoint(base: &Url, path: &str) -> anyhow::Result<Url> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path)
        .with_context(|| format!("cannot build the URL of /{path} from {base}"))
}

/// `{"amount":N}` for every amount, built once when the range is narrow enough.
#[derive(Debug)]
enum Bodies {
    Table { min: i64, bodies: Vec<Bytes> },
    Format,
}

impl Bodies {
    fn new(amounts: AmountSpec) -> Self {
        if amounts.max - amounts.min < PRECOMPUTED_AMOUNTS {
            let bodies = (amounts.min..=amounts.max).map(body).collect();
            Bodies::Table {
                min: amounts.min,
                bodies,
            }
        } else {
            Bodies::Format
        }
    }

    #[inline]
    fn get(&self, amount: i64) -> Bytes {
        match self {
            Bodies::Table { min, bodies } => match bodies.get((amount - min) as usize) {
                // Cloning `Bytes` bumps a reference count; it does not copy.
                Some(bytes) => bytes.clone(),
                None => body(amount),
            },
            Bodies::Format => body(amount),
        }
    }
}

fn body(amount: i64) -> Bytes {
    Bytes::from(format!(r#"{{"amount":{amount}}}"#))
}

/// Runs the job on `threads` threads sharing `concurrency` tasks, and merges what they saw.
pub async fn run(job: Arc<Job>, threads: usize, concurrency: u64) -> anyhow::Result<Stats> {
    let threads = threads.clamp(1, concurrency.max(1) as usize);
    let mut results = Vec::with_capacity(threads);
    for thread in 0..threads {
        // Spread the remainder over the first threads: 64 over 3 is 22, 21, 21.
        let share = concurrency / threads as u64
            + u64::from((thread as u64) < concurrency % threads as u64);
        let (sender, receiver) = oneshot::channel();
        let job = job.clone();
        std::thread::Builder::new()
            .name(format!("racebank-load-{thread}"))
            .spawn(move || {
                let _ = sender.send(worker_thread(&job, share as usize));
            })
            .context("cannot start a worker thread")?;
        results.push(receiver);
    }
    let mut merged = Stats::new(job.ladder.is_some());
    for receiver in results {
        let stats = receiver
            .await
            .context("a worker thread stopped unexpectedly")??;
        merged.merge(&stats);
    }
    Ok(merged)
}

/// One worker thread: its runtime, its client, its tasks, its stats.
fn worker_thread(job: &Arc<Job>, tasks: usize) -> anyhow::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a worker runtime")?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(tasks)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(job.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let stats = Rc::new(RefCell::new(Stats::new(job.ladder.is_some())));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::task::spawn_local(task_loop(client.clone(), job.clone(), stats.clone()))
            })
            .collect();
        for handle in handles {
            // A task cannot fail; if one panicked, the others' results still stand.
            let _ = handle.await;
        }
    });
    let stats = stats.replace(Stats::new(false));
    Ok(stats)
}

/// The loop of one in-flight slot: claim an index, send its operation, record the answer.
async fn task_loop(client: reqwest::Client, job: Arc<Job>, stats: Rc<RefCell<Stats>>) {
    let json = HeaderValue::from_static("application/json");
    loop {
        let index = match job.stop {
            Stop::After(count) => {
                let index = job.claimed.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                index
            }
            Stop::At(deadline) => {
                if Instant::now() >= deadline {
                    break;
                }
                job.claimed.fetch_add(1, Ordering::Relaxed)
            }
        };
        let op = job.plan.op(index);
        let url = match op.kind {
            Kind::Deposit => job.deposit_url.clone(),
            Kind::Withdraw => job.withdraw_url.clone(),
        };
        let started = Instant::now();
        let sent = client
            .post(url)
            .header(CONTENT_TYPE, json.clone())
            .body(job.bodies.get(op.amount))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await;
                Ok((status, body, started.elapsed()))
            }
            Err(error) => Err(error),
        };
        let mut recorded = stats.borrow_mut();
        let outcome = match answer {
            Ok((status, body, latency)) => {
                recorded.record_status(status.as_u16(), latency);
                record_answer(&mut recorded, &job, status, body)
            }
            Err(error) => record_failure(&mut recorded, &error),
        };
        recorded.record_outcome(op.kind, op.amount, outcome);
    }
}

/// Classifies an HTTP answer and, for an acknowledgement, records the balance it reported.
fn record_answer(
    stats: &mut Stats,
    job: &Job,
    status: StatusCode,
    body: reqwest::Result<Bytes>,
) -> Outcome {
    if status.is_success() {
        stats.ok += 1;
        let balance = body
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BalanceBody>(&bytes).ok());
        match (balance, job.ladder, stats.seen.as_mut()) {
            (Some(answer), Some(ladder), Some(seen)) => {
                let limit = job.claimed.load(Ordering::Relaxed);
                match ladder.index(answer.balance, limit) {
                    Some(step) => seen.mark(step),
                    None => seen.mark_unexpected(),
                }
            }
            (Some(_), _, _) => {}
            (None, _, _) => stats.errors.body += 1,
        }
        return Outcome::Applied;
    }
    if status == StatusCode::CONFLICT {
        stats.refused += 1;
        return Outcome::NotApplied;
    }
    stats.errors.status += 1;
    if status.is_server_error() {
        let known_not_applied = status == StatusCode::SERVICE_UNAVAILABLE
            && body.is_ok_and(|bytes| contains(&bytes, CONTENTION_PROBLEM));
        if known_not_applied {
            Outcome::NotApplied
        } else {
            Outcome::Indeterminate
        }
    } else {
        // 4xx (408 included: our server drops a timed-out request before it writes) and
        // redirects, which are not followed.
        Outcome::NotApplied
    }
}

/// Classifies a request that got no HTTP answer.
fn record_failure(stats: &mut Stats, error: &reqwest::Error) -> Outcome {
    if error.is_timeout() {
        stats.errors.timeout += 1;
        Outcome::Indeterminate
    } else if error.is_connect() {
        // The connection was never made, so the request never reached the server.
        stats.errors.connect += 1;
        Outcome::NotApplied
    } else {
        stats.errors.transport += 1;
        Outcome::Indeterminate
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `{"balance": B}`.
#[derive(serde::Deserialize)]
struct BalanceBody {
    balance: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_path_prefix_of_the_base_url() {
        let plain: Url = "http://127.0.0.1:3000".parse().unwrap();
        assert_eq!(
            endpoint(&plain, "deposit").unwrap().as_str(),
            "http://127.0.0.1:3000/deposit"
        );
        let prefixed: Url = "http://127.0.0.1:3000/bank".parse().unwrap();
        assert_eq!(
            endpoint(&prefixed, "balance").unwrap().as_str(),
            "http://127.0.0.1:3000/bank/balance"
        );
    }

    #[test]
    fn bodies_are_built_once_for_narrow_ranges_and_formatted_for_wide_ones() {
        let narrow = Bodies::new(AmountSpec { min: 1, max: 100 });
        assert!(matches!(&narrow, Bodies::Table { bodies, .. } if bodies.len() == 100));
        assert_eq!(narrow.get(42), Bytes::from_static(br#"{"amount":42}"#));
        let wide = Bodies::new(AmountSpec {
            min: 1,
            max: 1_000_000,
        });
        assert!(matches!(wide, Bodies::Format));
        assert_eq!(
            wide.get(123_456),
            Bytes::from_static(br#"{"amount":123456}"#)
        );
    }
}
