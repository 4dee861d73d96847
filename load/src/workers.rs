//! The hot loop: worker threads, each with its own single-threaded runtime, connections and
//! [`Stats`].
//!
//! This follows oha's fast path. Each of `--threads` OS threads runs a current-thread tokio runtime
//! with its share of the concurrency as local tasks. Each task owns one HTTP/1.1 keep-alive
//! connection, sends its requests on it one after the other, and opens a new one when the server
//! closes it or a request on it fails. Tasks claim request indices from one shared atomic counter
//! (or stop at a deadline), so no lock is ever taken; they record into their thread's `Stats`
//! through a `RefCell` that is never held across an await. The target is resolved once, and the
//! request parts (origin-form paths, `Host`, bodies) are built once per thread, so that threads
//! share no reference count. The only shared write per request is that `fetch_add`.
//!
//! Why hyper's connection API and not reqwest: with reqwest (one client per thread) the hot loop
//! reached ~100k req/s on `POST /deposit` (mutex, `--work none`, c=64, 2 cores shared with the
//! server) where oha reached ~147k. A profile put our own code under 1% and reqwest, hyper-util's
//! pool, `url` and `idna` on top (reqwest's redirect layer re-parses the URL of every response).
//! Talking to `hyper::client::conn::http1` directly removes those layers: the same benchmark
//! (`load/bench/bench.py clients`, medians of alternating rounds) now measures racebank-load at
//! 0.95x to 1.01x of oha and 1.13x to 1.24x of `wrk -t2` (e.g. 159k, 157k and 128k req/s), and
//! client CPU per request below oha's (about 6.0 µs against 6.4 µs). What remains of the gap on
//! slow rounds is on the server's side of the shared cores, not in this loop.
//! The balance and `/stats` reads around the run ([`crate::probe`]) still use reqwest.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use racebank::routes::BalanceBody;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::ops::{Kind, Op, Plan};
use crate::opts::AmountSpec;
use crate::seen::Ladder;
use crate::stats::{Outcome, Stats};

/// Widest amount range whose bodies are all built in advance.
const PRECOMPUTED_AMOUNTS: i64 = 10_000;

/// The 503 problem types with which racebank says it changed nothing: optimistic mode gave up, or
/// the server cut the request short while shutting down.
const NOT_APPLIED_PROBLEMS: [&[u8]; 2] = [
    b"urn:racebank:problem:too-much-contention",
    b"urn:racebank:problem:shutting-down",
];

/// Connections one request may go through when the previous ones closed before it was sent.
const ATTEMPTS: usize = 3;

/// When the workers stop.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// When this many indices have been claimed.
    After(u64),
    /// When this instant has passed (requests in flight are finished).
    At(Instant),
}

/// Where the load goes: the server's addresses, resolved once, and what every request names.
#[derive(Debug, Clone)]
pub struct Target {
    /// The addresses of the host, tried in order when a connection is opened.
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header: `host[:port]` as the URL spells it.
    pub host: String,
    /// Origin-form target of deposits (`/deposit`, or `/prefix/deposit`).
    pub deposit: String,
    /// Origin-form target of withdrawals.
    pub withdraw: String,
}

impl Target {
    /// Checks that `base` is an http URL, resolves its host and builds the request targets.
    pub fn new(base: &Url) -> anyhow::Result<Self> {
        if base.scheme() != "http" {
            bail!("`{base}`: only http:// URLs are supported");
        }
        let Some(host) = base.host_str() else {
            bail!("`{base}` has no host");
        };
        let host = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let addrs = base
            .socket_addrs(|| Some(80))
            .with_context(|| format!("cannot resolve the host of {base}"))?;
        if addrs.is_empty() {
            bail!("the host of {base} has no address");
        }
        let target = Target {
            addrs,
            host,
            deposit: origin_form(base, "deposit")?,
            withdraw: origin_form(base, "withdraw")?,
        };
        // Fail now, not in a worker thread, if a part is not valid in a request.
        Requests::new(&target, AmountSpec { min: 1, max: 1 })?;
        Ok(target)
    }
}

/// The path and query of `base` joined with `path`: what an HTTP/1.1 request line names.
fn origin_form(base: &Url, path: &str) -> anyhow::Result<String> {
    let url = endpoint(base, path)?;
    Ok(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    })
}

/// Everything the workers need, shared read-only between threads.
#[derive(Debug)]
pub struct Job {
    /// Where requests go.
    pub target: Target,
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
}

impl Job {
    /// A job against `target`.
    pub fn new(
        target: Target,
        plan: Plan,
        stop: Stop,
        timeout: Duration,
        ladder: Option<Ladder>,
        claimed: Arc<AtomicU64>,
    ) -> Self {
        Job {
            target,
            plan,
            stop,
            timeout,
            ladder,
            claimed,
        }
    }

    /// The request parts for one thread, built in advance (each thread builds its own).
    pub fn requests(&self) -> anyhow::Result<Requests> {
        Requests::new(&self.target, self.plan.amounts())
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

/// The parts of every request, built once per thread: a request is then a few reference-count
/// bumps and the header map hyper needs.
#[derive(Debug)]
pub struct Requests {
    deposit: Uri,
    withdraw: Uri,
    host: HeaderValue,
    json: HeaderValue,
    bodies: Bodies,
}

impl Requests {
    /// The parts for `target`, with the bodies of `amounts` built in advance when the range is
    /// narrow enough.
    pub fn new(target: &Target, amounts: AmountSpec) -> anyhow::Result<Self> {
        let uri = |path: &str| {
            Uri::try_from(path).with_context(|| format!("`{path}` is not a valid request target"))
        };
        Ok(Requests {
            deposit: uri(&target.deposit)?,
            withdraw: uri(&target.withdraw)?,
            host: HeaderValue::from_str(&target.host)
                .with_context(|| format!("`{}` is not a valid Host header", target.host))?,
            json: HeaderValue::from_static("application/json"),
            bodies: Bodies::new(amounts),
        })
    }

    /// The `POST` of `op`.
    #[inline]
    pub fn build(&self, op: Op) -> Request<Full<Bytes>> {
        let uri = match op.kind {
            Kind::Deposit => self.deposit.clone(),
            Kind::Withdraw => self.withdraw.clone(),
        };
        let mut request = Request::new(Full::new(self.bodies.get(op.amount)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, self.json.clone());
        request
    }
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

/// One worker thread: its runtime, its request parts, its tasks, its stats.
fn worker_thread(job: &Arc<Job>, tasks: usize) -> anyhow::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a worker runtime")?;
    let requests = Rc::new(job.requests()?);
    let stats = Rc::new(RefCell::new(Stats::new(job.ladder.is_some())));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::task::spawn_local(task_loop(job.clone(), requests.clone(), stats.clone()))
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

/// The loop of one in-flight slot: claim an index, send its operation on the slot's connection,
/// record the answer.
async fn task_loop(job: Arc<Job>, requests: Rc<Requests>, stats: Rc<RefCell<Stats>>) {
    let mut connection = None;
    // One timer per task, re-armed lazily (see `within`).
    let mut timer = pin!(tokio::time::sleep(job.timeout));
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
        let started = Instant::now();
        let deadline = TokioInstant::from_std(started + job.timeout);
        let exchange = exchange(
            &mut connection,
            &job.target.addrs,
            requests.build(op),
            timer.as_mut(),
            deadline,
        )
        .await;
        let latency = started.elapsed();
        record(&mut stats.borrow_mut(), &job, op, exchange, latency);
    }
}

/// What became of one request.
#[derive(Debug)]
pub enum Exchange {
    /// An HTTP answer; the body is `None` when it broke off or timed out.
    Answer {
        /// The status.
        status: StatusCode,
        /// The whole body.
        body: Option<Bytes>,
    },
    /// No connection could carry it (refused, failed or timed out before anything was sent).
    NotSent,
    /// No answer within the timeout after it was sent.
    TimedOut,
    /// The connection failed after it was sent.
    Broken,
}

/// A keep-alive connection and the task that drives it; dropping it closes the socket.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A connection dropped after a timeout may still receive that answer: close it now.
        self.driver.abort();
    }
}

async fn connect(addrs: &[SocketAddr]) -> Option<Connection> {
    let stream = TcpStream::connect(addrs).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    let driver = tokio::task::spawn_local(async move {
        // How the connection ended shows in the requests sent on it.
        let _ = connection.await;
    });
    Some(Connection { sender, driver })
}

/// `future`, or `None` if `deadline` passes first.
///
/// `timer` is the task's one timer, left at an earlier request's deadline: moving it on every
/// request would touch the timer wheel on every request, so it is only moved when it fires before
/// `deadline`. It therefore never fires late, and an early firing only re-arms it.
async fn within<F: Future>(
    timer: Pin<&mut Sleep>,
    deadline: TokioInstant,
    future: F,
) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut timer = timer;
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if timer.deadline() >= deadline {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(deadline);
        }
    })
    .await
}

/// Sends `request` on `slot`'s connection (opening one if needed) and reads the whole answer
/// before `deadline`. A request the connection closed before sending is sent again on a new
/// one; after a timeout or a failure the connection is dropped.
async fn exchange(
    slot: &mut Option<Connection>,
    addrs: &[SocketAddr],
    mut request: Request<Full<Bytes>>,
    mut timer: Pin<&mut Sleep>,
    deadline: TokioInstant,
) -> Exchange {
    for _ in 0..ATTEMPTS {
        let connection = match slot {
            Some(connection) if !connection.sender.is_closed() => connection,
            _ => {
                *slot = None;
                match within(timer.as_mut(), deadline, connect(addrs)).await {
                    Some(Some(connection)) => slot.insert(connection),
                    // Refused, failed or too slow: nothing was sent.
                    _ => return Exchange::NotSent,
                }
            }
        };
        match within(timer.as_mut(), deadline, connection.sender.ready()).await {
            Some(Ok(())) => {}
            // Closed while idle: nothing was sent, try a new connection.
            Some(Err(_)) => {
                *slot = None;
                continue;
            }
            None => {
                *slot = None;
                return Exchange::NotSent;
            }
        }
        let response = match within(
            timer.as_mut(),
            deadline,
            connection.sender.try_send_request(request),
        )
        .await
        {
            Some(Ok(response)) => response,
            Some(Err(mut error)) => {
                *slot = None;
                match error.take_message() {
                    // Handed back unsent: the connection closed first.
                    Some(unsent) => {
                        request = unsent;
                        continue;
                    }
                    None => return Exchange::Broken,
                }
            }
            None => {
                *slot = None;
                return Exchange::TimedOut;
            }
        };
        let status = response.status();
        let body = match within(timer.as_mut(), deadline, response.into_body().collect()).await {
            Some(Ok(collected)) => Some(collected.to_bytes()),
            _ => {
                *slot = None;
                None
            }
        };
        return Exchange::Answer { status, body };
    }
    Exchange::NotSent
}

/// Records what became of `op` into `stats`, and returns whether it was applied.
#[inline]
pub fn record(
    stats: &mut Stats,
    job: &Job,
    op: Op,
    exchange: Exchange,
    latency: Duration,
) -> Outcome {
    let outcome = match exchange {
        Exchange::Answer { status, body } => {
            stats.record_status(status.as_u16(), latency);
            record_answer(stats, job, status, body)
        }
        Exchange::NotSent => {
            // The request never reached the server.
            stats.errors.connect += 1;
            Outcome::NotApplied
        }
        Exchange::TimedOut => {
            stats.errors.timeout += 1;
            Outcome::Indeterminate
        }
        Exchange::Broken => {
            stats.errors.transport += 1;
            Outcome::Indeterminate
        }
    };
    stats.record_outcome(op.kind, op.amount, outcome);
    outcome
}

/// Classifies an HTTP answer and, for an acknowledgement, records the balance it reported.
fn record_answer(stats: &mut Stats, job: &Job, status: StatusCode, body: Option<Bytes>) -> Outcome {
    if status.is_success() {
        stats.ok += 1;
        let balance = body.and_then(|bytes| serde_json::from_slice::<BalanceBody>(&bytes).ok());
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
            && body.is_some_and(|bytes| {
                NOT_APPLIED_PROBLEMS
                    .iter()
                    .any(|problem| contains(&bytes, problem))
            });
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
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
