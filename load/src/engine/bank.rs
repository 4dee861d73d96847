//! The bank's hot loop: the same threads, slots, keep-alive connections, shared counter and
//! interruption as `run`'s ([`crate::engine::pool`]), sending [`BankOp`]s instead of deposits.
//! As `run`'s, request `i` goes to replica `i % n` ([`replica_of`]), transfers and reads alike,
//! each slot keeping one connection per replica: replicas sharing a store share the bank, so a
//! guard that lives in one process is seen to cover only that process's requests.
//!
//! Each answer becomes an [`Event`]: what was sent, when, and what the answer says (every balance
//! of a read; applied, refused, deadlocked, rejected or unknown for a transfer). The engine judges
//! nothing: each thread hands its events to an [`Observer`] (the checker, which folds them as they
//! come, so memory stays flat) and to the history file, and the observers are merged at the end.

use std::cell::RefCell;
use std::collections::HashSet;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode, Uri};
use racebank::wire::{Effect, ProblemType};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant as TokioInstant;

use crate::engine::connection::{exchange, Connection, Exchange};
use crate::engine::history::{Batch, History};
use crate::engine::pool::{self, Stop, GIVE_UP_AFTER, REFUSED_PAUSE};
use crate::engine::stats::Stats;
use crate::plan::api::Header;
use crate::plan::bank::{BankOp, BankPlan};
use crate::plan::bank_api::{BankApi, Fill};
use crate::plan::target::{replica_of, Target};

/// What the answer to one request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A read answered 2xx: every balance, by position (`None`: the account was missing), and how
    /// many ids the bank answered that this run does not know.
    Read {
        /// Balances by position.
        balances: Vec<Option<i64>>,
        /// Ids answered that are no account of this run.
        unexpected: u32,
    },
    /// A transfer answered 2xx: applied.
    Applied,
    /// Refused by the funds check or the household rule (409): not applied.
    Refused,
    /// Answered 503 `deadlock`: not applied.
    Deadlock,
    /// Not applied for another reason (another 4xx, one of racebank's 503s that write nothing,
    /// no connection); for a read, any failure.
    Rejected,
    /// May or may not have been applied: a timeout, a broken connection, a 5xx that does not say
    /// it wrote nothing, or in flight at Ctrl-C.
    Unknown,
}

/// One request and what became of it, as the checker folds it and the history writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its index in the sequence.
    pub index: u64,
    /// What was sent.
    pub op: BankOp,
    /// When it was sent, in microseconds since the run started.
    pub start_us: u64,
    /// When its answer (or failure) came.
    pub end_us: u64,
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// What the answer says.
    pub answer: Answer,
}

/// Folds the events of one worker thread; the threads' observers are merged at the end.
pub trait Observer: Clone + Send + 'static {
    /// Takes one event into account.
    fn observe(&mut self, event: &Event);
    /// Adds another thread's observations.
    fn merge(&mut self, other: Self);
}

/// One line of the bank's `--history`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    index: u64,
    op: &'static str,
    from: Option<usize>,
    to: Option<usize>,
    amount: Option<i64>,
    replica: usize,
    connection: usize,
    start_us: u64,
    end_us: u64,
    status: Option<u16>,
    outcome: &'static str,
    balances: Option<Vec<Option<i64>>>,
    total: Option<i128>,
}

impl Line {
    fn new(event: &Event, (replica, connection): (usize, usize)) -> Self {
        let (op, from, to, amount) = match event.op {
            BankOp::Read => ("read", None, None, None),
            BankOp::Transfer { from, to, amount } => {
                ("transfer", Some(from), Some(to), Some(amount))
            }
        };
        let (outcome, balances) = match &event.answer {
            Answer::Read { balances, .. } => ("ok", Some(balances.clone())),
            Answer::Applied => ("ok", None),
            Answer::Refused => ("refused", None),
            Answer::Deadlock => ("deadlock", None),
            Answer::Rejected => ("error", None),
            Answer::Unknown => ("indeterminate", None),
        };
        let total = balances
            .as_ref()
            .map(|balances| balances.iter().flatten().map(|&b| i128::from(b)).sum());
        Line {
            index: event.index,
            op,
            from,
            to,
            amount,
            replica,
            connection,
            start_us: event.start_us,
            end_us: event.end_us,
            status: event.status,
            outcome,
            balances,
            total,
        }
    }
}

/// Everything the bank's workers share, read-only but for the counter and `gave_up`.
#[derive(Debug)]
pub(crate) struct BankJob {
    /// Where requests go, one per replica, round robin.
    pub targets: Vec<Target>,
    /// Sent with every request.
    pub headers: Vec<Header>,
    /// The bank's routes, bodies and pointers.
    pub api: BankApi,
    /// The operation sequence.
    pub plan: BankPlan,
    /// The ids of the bank's accounts, by position (`"0"`, `"1"`, ...).
    pub ids: Vec<String>,
    /// When to stop.
    pub stop: Stop,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Indices claimed so far (also read by the progress bar).
    pub claimed: Arc<AtomicU64>,
    /// When the run started: the zero of the events' times.
    pub started: Instant,
    /// Set when a slot found the server gone (every connection refused for a second).
    pub gave_up: AtomicBool,
}

/// What the workers saw: the traffic (latency, statuses, errors) and the merged observer.
pub(crate) struct Seen<O> {
    /// Latency, status codes, errors, as `run` counts them.
    pub traffic: Stats,
    /// The checker's fold.
    pub observer: O,
}

/// What one worker thread shares between its slots.
struct Thread<O> {
    job: Arc<BankJob>,
    parts: Parts,
    seen: RefCell<Seen<O>>,
    history: RefCell<Option<Batch<Line>>>,
    in_flight: RefCell<Vec<Option<(u64, BankOp, Instant)>>>,
    first_slot: usize,
}

impl<O: Observer> Thread<O> {
    fn record(&self, slot: usize, event: &Event) {
        if let Some(batch) = self.history.borrow_mut().as_mut() {
            let replica = replica_of(event.index, self.parts.replicas.len());
            batch.push(Line::new(event, (replica, self.first_slot + slot)));
        }
        self.seen.borrow_mut().observer.observe(event);
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.job.started).as_micros()).unwrap_or(u64::MAX)
    }
}

/// Runs the job on `threads` threads sharing `concurrency` slots until it is done or `interrupt`
/// turns true; each thread folds its events into a clone of `observer`.
pub(crate) async fn run<O: Observer>(
    job: Arc<BankJob>,
    (threads, concurrency): (usize, u64),
    observer: &O,
    history: Option<&History<Line>>,
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<Seen<O>> {
    let results = pool::start_threads(threads, concurrency, |slots| {
        let job = job.clone();
        let batch = history.map(History::batch);
        let interrupt = interrupt.clone();
        let observer = observer.clone();
        move || worker_thread(&job, slots, observer, batch, interrupt)
    })?;
    let mut merged = Seen {
        traffic: Stats::new(false),
        observer: observer.clone(),
    };
    for receiver in results {
        let seen = receiver
            .await
            .context("a worker thread stopped unexpectedly")??;
        merged.traffic.merge(&seen.traffic);
        merged.observer.merge(seen.observer);
    }
    Ok(merged)
}

fn worker_thread<O: Observer>(
    job: &Arc<BankJob>,
    slots: std::ops::Range<usize>,
    observer: O,
    history: Option<Batch<Line>>,
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<Seen<O>> {
    let thread = Rc::new(Thread {
        job: job.clone(),
        parts: Parts::new(job)?,
        seen: RefCell::new(Seen {
            traffic: Stats::new(false),
            observer,
        }),
        history: RefCell::new(history),
        in_flight: RefCell::new(vec![None; slots.len()]),
        first_slot: slots.start,
    });
    pool::run_slots(slots.len(), interrupt, |slot| {
        slot_loop(thread.clone(), slot)
    })?;
    let abandoned: Vec<_> = thread
        .in_flight
        .borrow_mut()
        .drain(..)
        .enumerate()
        .collect();
    for (slot, request) in abandoned {
        if let Some((index, op, started)) = request {
            let event = Event {
                index,
                op,
                start_us: thread.micros(started),
                end_us: thread.micros(Instant::now()),
                status: None,
                answer: match op {
                    BankOp::Read => Answer::Rejected,
                    BankOp::Transfer { .. } => Answer::Unknown,
                },
            };
            let mut seen = thread.seen.borrow_mut();
            seen.traffic.requests += 1;
            seen.traffic.errors.interrupted += 1;
            drop(seen);
            thread.record(slot, &event);
        }
    }
    thread.history.borrow_mut().take();
    let Ok(thread) = Rc::try_unwrap(thread) else {
        anyhow::bail!("a slot outlived its thread");
    };
    Ok(thread.seen.into_inner())
}

/// The loop of one slot: claim an index, send its operation, fold the answer.
async fn slot_loop<O: Observer>(thread: Rc<Thread<O>>, slot: usize) {
    let job = &thread.job;
    let replicas = thread.parts.replicas.len();
    let mut connections: Vec<Option<Connection>> = (0..replicas).map(|_| None).collect();
    let mut timer = pin!(tokio::time::sleep(job.timeout));
    let mut refused_since: Option<Instant> = None;
    while !job.gave_up.load(Ordering::Relaxed) {
        let Some(index) = job.stop.claim(&job.claimed) else {
            break;
        };
        let op = job.plan.op(index);
        let started = Instant::now();
        thread.in_flight.borrow_mut()[slot] = Some((index, op, started));
        let deadline = TokioInstant::from_std(started + job.timeout);
        let replica = replica_of(index, replicas);
        let request = thread.parts.build(op, replica, &job.ids);
        let exchange = exchange(
            &mut connections[replica],
            &job.targets[replica].addrs,
            request,
            timer.as_mut(),
            deadline,
        )
        .await;
        let ended = Instant::now();
        thread.in_flight.borrow_mut()[slot] = None;
        let refused = matches!(exchange, Exchange::NotSent);
        let (status, answer) = {
            let mut seen = thread.seen.borrow_mut();
            let read = (&job.api, job.ids.as_slice());
            classify(&mut seen.traffic, op, exchange, ended - started, read)
        };
        let event = Event {
            index,
            op,
            start_us: thread.micros(started),
            end_us: thread.micros(ended),
            status,
            answer,
        };
        thread.record(slot, &event);
        if !refused {
            refused_since = None;
        } else if ended - *refused_since.get_or_insert(started) >= GIVE_UP_AFTER {
            job.gave_up.store(true, Ordering::Relaxed);
            break;
        } else {
            tokio::time::sleep(REFUSED_PAUSE).await;
        }
    }
}

/// What an exchange says about `op`, counted in `traffic` as `run` counts its requests.
fn classify(
    traffic: &mut Stats,
    op: BankOp,
    exchange: Exchange,
    latency: Duration,
    (api, ids): (&BankApi, &[String]),
) -> (Option<u16>, Answer) {
    traffic.requests += 1;
    let unknown = match op {
        BankOp::Read => Answer::Rejected,
        BankOp::Transfer { .. } => Answer::Unknown,
    };
    let (status, body) = match exchange {
        Exchange::NotSent => {
            traffic.errors.connect += 1;
            return (None, Answer::Rejected);
        }
        Exchange::TimedOut => {
            traffic.errors.timeout += 1;
            return (None, unknown);
        }
        Exchange::Broken => {
            traffic.errors.transport += 1;
            return (None, unknown);
        }
        Exchange::Oversized { status } => (status, None),
        Exchange::Answer { status, body, .. } => (status, body),
    };
    traffic.record_status(status.as_u16(), latency);
    let code = Some(status.as_u16());
    if status.is_success() {
        traffic.ok += 1;
        return match op {
            BankOp::Transfer { .. } => (code, Answer::Applied),
            BankOp::Read => {
                if let Some(answer) = body
                    .as_deref()
                    .and_then(|body| read_balances(api, body, ids))
                {
                    (code, answer)
                } else {
                    traffic.errors.body += 1;
                    (code, Answer::Rejected)
                }
            }
        };
    }
    let problem = body.as_deref().and_then(ProblemType::of_document);
    if problem == Some(ProblemType::Deadlock) {
        traffic.errors.status += 1;
        return (code, Answer::Deadlock);
    }
    if status == StatusCode::CONFLICT || problem.map(ProblemType::effect) == Some(Effect::Refused) {
        traffic.refused += 1;
        return (code, Answer::Refused);
    }
    traffic.errors.status += 1;
    // A 5xx may have been applied before it failed, unless it is one of racebank's problems
    // answered before anything was written; a 4xx was not.
    if status.is_server_error() && problem.map(ProblemType::effect) != Some(Effect::NotApplied) {
        (code, unknown)
    } else {
        (code, Answer::Rejected)
    }
}

/// The balances of a read-all answer (`GET /accounts`), by position of `ids`; `None` when it is
/// not such an answer.
pub(crate) fn read_balances(api: &BankApi, body: &[u8], ids: &[String]) -> Option<Answer> {
    let mut balances = vec![None; ids.len()];
    let mut unexpected = 0;
    for (id, balance) in api.read_all(body)? {
        match position_of(&id, ids) {
            Some(position) => balances[position] = Some(balance),
            None => unexpected += 1,
        }
    }
    Some(Answer::Read {
        balances,
        unexpected,
    })
}

/// The position of `id` among `ids`: its number when the ids are `0..N` (the common case, no
/// search), else a search.
fn position_of(id: &str, ids: &[String]) -> Option<usize> {
    match id.parse::<usize>() {
        Ok(position) if ids.get(position).is_some_and(|known| known == id) => Some(position),
        _ => ids.iter().position(|known| known == id),
    }
}

/// The request targets of one replica, built once.
struct Replica {
    accounts: Uri,
    /// The transfer route's target when its path names no account, else built per request.
    transfers: Option<Uri>,
    target: Target,
    host: HeaderValue,
}

impl Replica {
    fn new(target: &Target, api: &BankApi) -> anyhow::Result<Self> {
        let uri = |path: &str| {
            let origin = target.origin_form(path);
            Uri::try_from(origin.as_str())
                .with_context(|| format!("`{origin}` is not a valid request target"))
        };
        let read = api
            .read
            .fixed()
            .context("the read-all route names no account")?;
        Ok(Replica {
            accounts: uri(&read)?,
            transfers: api.transfer.fixed().map(|path| uri(&path)).transpose()?,
            target: target.clone(),
            host: HeaderValue::from_str(&target.host)
                .with_context(|| format!("`{}` is not a valid Host header", target.host))?,
        })
    }
}

/// The request parts of a thread, built once: every replica's targets, and what all share.
struct Parts {
    replicas: Vec<Replica>,
    api: BankApi,
    headers: Vec<Header>,
    content_type: bool,
}

impl Parts {
    fn new(job: &BankJob) -> anyhow::Result<Self> {
        Ok(Parts {
            replicas: (job.targets.iter())
                .map(|target| Replica::new(target, &job.api))
                .collect::<anyhow::Result<_>>()?,
            api: job.api.clone(),
            headers: job.headers.clone(),
            content_type: !job.headers.iter().any(|header| header.name == CONTENT_TYPE),
        })
    }

    /// The transfer's request target on `replica`: the fixed one, or its path with the accounts
    /// filled in.
    fn transfer_uri(&self, replica: &Replica, from: &str, to: &str) -> Uri {
        if let Some(uri) = &replica.transfers {
            return uri.clone();
        }
        let path = self.api.transfer.path.render(&Fill {
            from,
            to,
            ..Fill::default()
        });
        // Checked with sample ids when the API was built; an id that breaks it goes to `/`.
        Uri::try_from(replica.target.origin_form(&path).as_str())
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    fn build(&self, op: BankOp, replica: usize, ids: &[String]) -> Request<Full<Bytes>> {
        let replica = &self.replicas[replica];
        let (method, uri, body) = match op {
            BankOp::Read => (
                self.api.read.method.clone(),
                replica.accounts.clone(),
                Bytes::new(),
            ),
            BankOp::Transfer { from, to, amount } => (
                self.api.transfer.method.clone(),
                self.transfer_uri(replica, &ids[from], &ids[to]),
                self.api.transfer_body(&ids[from], &ids[to], amount),
            ),
        };
        let with_body = !body.is_empty();
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, replica.host.clone());
        if with_body && self.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for header in &self.headers {
            headers.append(header.name.clone(), header.value.clone());
        }
        request
    }
}

/// The account ids of `count` accounts named as `racebank --accounts N` names them.
pub(crate) fn numbered_ids(count: usize) -> Vec<String> {
    (0..count).map(|n| n.to_string()).collect()
}

/// Whether `ids` (what the bank answered) hold every id of `wanted`; the ids missing otherwise.
pub(crate) fn missing_ids<'a>(wanted: &'a [String], ids: &[String]) -> Vec<&'a str> {
    let have: HashSet<&str> = ids.iter().map(String::as_str).collect();
    wanted
        .iter()
        .filter(|id| !have.contains(id.as_str()))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_maps_balances_to_positions_and_counts_unknown_ids() {
        let ids = numbered_ids(3);
        let body = br#"{"accounts":[{"id":"1","balance":4},{"id":"0","balance":6},{"id":"x","balance":1}],"total":11,"read":"rows"}"#;
        assert_eq!(
            read_balances(&BankApi::default(), body, &ids),
            Some(Answer::Read {
                balances: vec![Some(6), Some(4), None],
                unexpected: 1
            })
        );
        assert_eq!(read_balances(&BankApi::default(), b"{}", &ids), None);
    }

    #[test]
    fn transfers_are_classified_as_run_classifies_writes() {
        let ids = numbered_ids(2);
        let op = BankOp::Transfer {
            from: 0,
            to: 1,
            amount: 1,
        };
        let answer = |status: u16, body: &str| Exchange::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: Some(Bytes::from(body.to_string())),
            hint: None,
        };
        let deadlock = racebank::Problem::one_of_each()
            .into_iter()
            .find(|problem| problem.problem_type() == ProblemType::Deadlock)
            .unwrap()
            .to_json()
            .to_string();
        let mut traffic = Stats::new(false);
        let latency = Duration::from_micros(5);
        for (exchange, expected) in [
            (answer(200, "{}"), Answer::Applied),
            (answer(409, ""), Answer::Refused),
            (answer(503, &deadlock), Answer::Deadlock),
            (answer(503, "busy"), Answer::Unknown),
            (answer(422, ""), Answer::Rejected),
            (Exchange::TimedOut, Answer::Unknown),
            (Exchange::NotSent, Answer::Rejected),
        ] {
            let case = format!("{exchange:?}");
            assert_eq!(
                classify(
                    &mut traffic,
                    op,
                    exchange,
                    latency,
                    (&BankApi::default(), &ids)
                )
                .1,
                expected,
                "{case}"
            );
        }
        assert_eq!(traffic.requests, 7);
    }
}
