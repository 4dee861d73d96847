//! The hot loop: worker threads, each with its own single-threaded runtime, connections and
//! [`Stats`].
//!
//! This follows oha's fast path. Each of `--threads` OS threads runs a current-thread tokio runtime
//! with its share of the concurrency as local tasks ("slots"). Each slot keeps one HTTP/1.1
//! keep-alive connection per replica ([`crate::engine::connection`]) and sends its requests one after the
//! other. Slots claim request indices from one shared atomic counter (or stop at a deadline), so no
//! lock is ever taken; request `i` goes to replica `i % replicas` (round robin). They record into
//! their thread's `Stats` through a `RefCell` that is never held across an await. The request parts
//! are built once per thread ([`crate::engine::requests`]), so that threads share no reference count. The
//! only shared write per request is that `fetch_add`.
//!
//! An interruption (Ctrl-C) stops every thread at once: what is in flight is abandoned and counted
//! as indeterminate, since the server may or may not apply it.
//!
//! A server that is gone (every connection refused) is not hammered until the run's count or
//! deadline: a slot waits [`REFUSED_PAUSE`] after each refused connection, and stops once it has
//! been refused for [`GIVE_UP_AFTER`] without a single connection accepted on any replica. The run
//! then ends early and says so ([`Job::gave_up`]).

use std::cell::RefCell;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::header::HeaderValue;
use hyper::Uri;
use racebank::wire::{Effect, ProblemType};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::engine::connection::{exchange, Connection, Exchange, Hint};
use crate::engine::history::{Batch, Entry, History};
use crate::engine::requests::Requests;
use crate::engine::stats::{Earlier, Reading, Recorded, Stats};
use crate::plan::api::Api;
use crate::plan::ops::{Op, Plan};
use crate::plan::target::{replica_of, Target};

/// How long a slot pauses after a refused connection: a port nobody listens on refuses at once,
/// and trying it again at full speed would only pile up errors.
pub(crate) const REFUSED_PAUSE: Duration = Duration::from_millis(10);

/// How long a slot goes on while every connection it tries is refused: past that, the server is
/// gone and the slot stops.
pub(crate) const GIVE_UP_AFTER: Duration = Duration::from_secs(1);

/// The longest wait for a 503's `Retry-After`: a server asking for more is asked again sooner,
/// so that a run cannot be stalled by one header.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The most same-origin redirects one attempt follows (`--follow-redirects`).
pub(crate) const MAX_REDIRECTS: usize = 5;

/// When the workers stop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// When this many indices have been claimed.
    After(u64),
    /// When this instant has passed (requests in flight are finished).
    At(Instant),
}

impl Stop {
    /// The next index of the shared counter `claimed`, or `None` once the count is reached or
    /// the time is up: the one shared write per request.
    pub(crate) fn claim(self, claimed: &AtomicU64) -> Option<u64> {
        match self {
            Stop::After(count) => {
                let index = claimed.fetch_add(1, Ordering::Relaxed);
                (index < count).then_some(index)
            }
            Stop::At(deadline) => {
                if Instant::now() >= deadline {
                    return None;
                }
                Some(claimed.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

/// Everything the workers need, shared read-only between threads.
#[derive(Debug)]
pub(crate) struct Job {
    /// Where requests go, one per replica.
    pub targets: Vec<Target>,
    /// The shape of the API.
    pub api: Api,
    /// The operation sequence.
    pub plan: Plan,
    /// When to stop.
    pub stop: Stop,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How answers are read.
    pub reading: Reading,
    /// Request indices claimed so far (also read by the progress bar).
    pub claimed: Arc<AtomicU64>,
    /// When the run started: the zero of the history's times.
    pub started: Instant,
    /// How often an operation is sent again after a failure that leaves its outcome unknown.
    pub retries: u32,
    /// With idempotency keys: the run's id, the middle of every key (`rb-<run>-<index>`).
    pub keys: Option<u64>,
    /// Set when a slot stopped because every connection was refused for [`GIVE_UP_AFTER`]; then
    /// every slot stops, and the run ends before its count or deadline.
    pub gave_up: AtomicBool,
}

impl Job {
    /// The request parts for one thread, built in advance (each thread builds its own).
    pub(crate) fn requests(&self) -> anyhow::Result<Requests> {
        Requests::new(&self.targets, &self.api, self.plan.amounts())
    }
}

/// Runs the job on `threads` threads sharing `concurrency` slots until it is done or `interrupt`
/// turns true, and merges what they saw.
pub(crate) async fn run(
    job: Arc<Job>,
    threads: usize,
    concurrency: u64,
    history: Option<&History>,
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<Stats> {
    let results = start_threads(threads, concurrency, |slots| {
        let job = job.clone();
        let batch = history.map(History::batch);
        let interrupt = interrupt.clone();
        move || worker_thread(&job, slots, batch, interrupt)
    })?;
    let mut merged = Stats::new(job.reading.ladder.is_some());
    for receiver in results {
        let stats = receiver
            .await
            .context("a worker thread stopped unexpectedly")??;
        merged.merge(&stats);
    }
    Ok(merged)
}

/// Starts `threads` OS threads (never more than `concurrency`) sharing `concurrency` slots:
/// `prepare` is called here with each thread's slots and returns what that thread runs; its result
/// comes back on the thread's channel. `run` and the bank's loop share this.
pub(crate) fn start_threads<T, W>(
    threads: usize,
    concurrency: u64,
    mut prepare: impl FnMut(std::ops::Range<usize>) -> W,
) -> anyhow::Result<Vec<oneshot::Receiver<T>>>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    let threads = threads.clamp(1, usize::try_from(concurrency.max(1)).unwrap_or(usize::MAX));
    let mut results = Vec::with_capacity(threads);
    let mut first_slot = 0;
    for thread in 0..threads {
        // Spread the remainder over the first threads: 64 over 3 is 22, 21, 21.
        let share = concurrency / threads as u64
            + u64::from((thread as u64) < concurrency % threads as u64);
        let share = usize::try_from(share).unwrap_or(usize::MAX);
        let (sender, receiver) = oneshot::channel();
        let work = prepare(first_slot..first_slot + share);
        std::thread::Builder::new()
            .name(format!("racebank-load-{thread}"))
            .spawn(move || {
                let _ = sender.send(work());
            })
            .context("cannot start a worker thread")?;
        first_slot += share;
        results.push(receiver);
    }
    Ok(results)
}

/// Runs `slot(i)` for every `i` in `0..slots` as local tasks of one current-thread runtime, until
/// all are done or `interrupt` turns true; the slots still waiting for an answer are then dropped.
pub(crate) fn run_slots<F, Fut>(
    slots: usize,
    mut interrupt: watch::Receiver<bool>,
    slot: F,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a worker runtime")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let handles: Vec<_> = (0..slots)
            .map(|index| tokio::task::spawn_local(slot(index)))
            .collect();
        let all_done = async {
            for handle in handles {
                // A slot cannot fail; if one panicked, the others' results still stand.
                let _ = handle.await;
            }
        };
        tokio::select! {
            () = all_done => {}
            _ = interrupt.wait_for(|stop| *stop) => {}
        }
    });
    // Dropping the local set drops the slots that are still waiting for an answer.
    drop(local);
    Ok(())
}

/// What one worker thread shares between its slots.
struct Thread {
    job: Arc<Job>,
    requests: Requests,
    stats: RefCell<Stats>,
    history: RefCell<Option<Batch>>,
    /// The request each slot has in flight, so an interruption can count it.
    in_flight: RefCell<Vec<Option<InFlight>>>,
    first_slot: usize,
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    index: u64,
    op: Op,
    replica: usize,
    started: Instant,
}

impl Thread {
    /// Records what became of a request, in the stats and the history.
    #[inline]
    fn record(&self, slot: usize, request: InFlight, recorded: Recorded, ended: Instant) {
        if let Some(batch) = self.history.borrow_mut().as_mut() {
            let since = |at: Instant| {
                u64::try_from(at.duration_since(self.job.started).as_micros()).unwrap_or(u64::MAX)
            };
            batch.push(Entry::new(
                request.index,
                request.op,
                (request.replica, self.first_slot + slot),
                (since(request.started), since(ended)),
                recorded,
            ));
        }
    }
}

/// One worker thread: its runtime, its request parts, its slots, its stats.
fn worker_thread(
    job: &Arc<Job>,
    slots: std::ops::Range<usize>,
    history: Option<Batch>,
    interrupt: watch::Receiver<bool>,
) -> anyhow::Result<Stats> {
    let thread = Rc::new(Thread {
        job: job.clone(),
        requests: job.requests()?,
        stats: RefCell::new(Stats::new(job.reading.ladder.is_some())),
        history: RefCell::new(history),
        in_flight: RefCell::new(vec![None; slots.len()]),
        first_slot: slots.start,
    });
    run_slots(slots.len(), interrupt, |slot| {
        slot_loop(thread.clone(), slot)
    })?;
    let abandoned: Vec<_> = thread
        .in_flight
        .borrow_mut()
        .drain(..)
        .enumerate()
        .collect();
    for (slot, request) in abandoned {
        if let Some(request) = request {
            let recorded = thread.stats.borrow_mut().record_interrupted(request.op);
            thread.record(slot, request, recorded, Instant::now());
        }
    }
    thread.history.borrow_mut().take();
    let stats = thread.stats.replace(Stats::new(false));
    Ok(stats)
}

/// The idempotency key of operation `index` of run `run`: the same on every attempt.
fn idempotency_key(run: u64, index: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("rb-{run:016x}-{index}"))
        .expect("a key of ASCII letters, digits and dashes is a valid header value")
}

/// Whether an attempt is worth sending again, and if so whether it may have been applied: no
/// connection (not applied), a timeout or a broken connection (may have been), an answer that
/// broke off or says the outcome is unknown (may have been), racebank's "another request
/// with this key was answered at the same moment" (this one was not, its twin may have been),
/// or a 503 with `Retry-After`: the server asks to be asked again (not applied when it is one of
/// racebank's problems that write nothing, else may have been).
fn retry(exchange: &Exchange) -> Option<bool> {
    match exchange {
        Exchange::NotSent => Some(false),
        Exchange::Answer {
            body,
            hint: Some(Hint::RetryAfter(_)),
            ..
        } => Some(
            body.as_deref()
                .and_then(ProblemType::of_document)
                .map(ProblemType::effect)
                != Some(Effect::NotApplied),
        ),
        Exchange::TimedOut | Exchange::Broken | Exchange::Answer { body: None, .. } => Some(true),
        // An answer came, if an overlong one: the server decided; resending would not help.
        Exchange::Oversized { .. } => None,
        Exchange::Answer {
            body: Some(body), ..
        } => match ProblemType::of_document(body) {
            Some(ProblemType::OutcomeUnknown | ProblemType::IdempotencyKeyInUse) => Some(true),
            _ => None,
        },
    }
}

impl Job {
    /// How long to wait for a `Retry-After` of `asked`: at most [`MAX_RETRY_AFTER`], and `None`
    /// when that wait would end past the run's deadline (nothing is sent after it).
    fn retry_wait(&self, asked: Duration) -> Option<Duration> {
        let wait = asked.min(MAX_RETRY_AFTER);
        match self.stop {
            Stop::At(deadline) if Instant::now() + wait >= deadline => None,
            _ => Some(wait),
        }
    }

    /// The next index to send, or `None` once the count is reached or the time is up.
    fn claim(&self) -> Option<u64> {
        self.stop.claim(&self.claimed)
    }
}

/// Sends one operation, and again to the next replica after an answer that allows a retry,
/// up to `--retry` times; returns the last attempt's exchange, and what the attempts before it
/// may have done (the operation is judged by all of them: [`Stats::record_attempts`]).
async fn send(
    thread: &Thread,
    connections: &mut [Option<Connection>],
    mut timer: Pin<&mut Sleep>,
    request: InFlight,
    key: Option<HeaderValue>,
) -> (Exchange, Earlier) {
    let job = &thread.job;
    let replicas = connections.len();
    let op = request.op;
    let mut attempt = 0;
    let mut to = request.replica;
    let mut earlier = Earlier {
        may_have_applied: false,
        keyed: key.is_some(),
    };
    loop {
        let exchange = attempt_once(
            thread,
            &mut connections[to],
            timer.as_mut(),
            op,
            to,
            key.as_ref(),
        )
        .await;
        let Some(may_have_applied) = retry(&exchange).filter(|_| attempt < job.retries) else {
            return (exchange, earlier);
        };
        earlier.may_have_applied |= may_have_applied;
        if let Exchange::Answer {
            hint: Some(Hint::RetryAfter(asked)),
            ..
        } = exchange
        {
            // The server asked for time: give it, or give up on this operation if the run
            // ends first.
            let Some(wait) = job.retry_wait(asked) else {
                return (exchange, earlier);
            };
            thread.stats.borrow_mut().retry_after_waits += 1;
            tokio::time::sleep(wait).await;
        }
        thread.stats.borrow_mut().record_retry(
            op.kind,
            op.amount,
            key.is_none() && may_have_applied,
        );
        attempt += 1;
        to = (to + 1) % replicas;
    }
}

/// Sends one attempt of `op` to replica `to`; with `--follow-redirects`, a 307 or 308 to the
/// same origin is followed (the same method, body and headers, up to [`MAX_REDIRECTS`] times).
/// Any other redirect is the attempt's answer: never followed, least of all to another origin,
/// which would receive the `-H` headers.
async fn attempt_once(
    thread: &Thread,
    connection: &mut Option<Connection>,
    mut timer: Pin<&mut Sleep>,
    op: Op,
    to: usize,
    key: Option<&HeaderValue>,
) -> Exchange {
    let job = &thread.job;
    // Where the last redirect sent the request; `None` for its own route.
    let mut moved: Option<Uri> = None;
    let mut hops = 0;
    loop {
        let mut request = thread.requests.build(op, to, key);
        if let Some(uri) = &moved {
            *request.uri_mut() = uri.clone();
        }
        let deadline = TokioInstant::from_std(Instant::now() + job.timeout);
        let exchange = exchange(
            connection,
            &job.targets[to].addrs,
            request,
            timer.as_mut(),
            deadline,
        )
        .await;
        // 301, 302 and 303 would turn the write into a GET: those are answers, never followed.
        if let Exchange::Answer {
            status,
            hint: Some(Hint::Location(location)),
            ..
        } = &exchange
        {
            if job.api.follow_redirects
                && hops < MAX_REDIRECTS
                && matches!(status.as_u16(), 307 | 308)
            {
                // Only a redirect pays for finding where the request went.
                let from = moved
                    .take()
                    .unwrap_or_else(|| thread.requests.build(op, to, key).uri().clone());
                if let Some(next) = same_origin(&job.targets[to], &from, location) {
                    moved = Some(next);
                    hops += 1;
                    continue;
                }
            }
        }
        return exchange;
    }
}

/// The request target `location` leads to from `from`, if it is on `target`'s origin (scheme,
/// host and port).
fn same_origin(target: &Target, from: &Uri, location: &HeaderValue) -> Option<Uri> {
    let mut base = target.url.clone();
    base.set_path(from.path());
    base.set_query(from.query());
    let next = base.join(location.to_str().ok()?).ok()?;
    if next.origin() != target.url.origin() {
        return None;
    }
    let origin_form = match next.query() {
        Some(query) => format!("{}?{query}", next.path()),
        None => next.path().to_string(),
    };
    Uri::try_from(origin_form).ok()
}

/// The loop of one in-flight slot: claim an index, send its operation on the slot's connection to
/// its replica, record the answer.
async fn slot_loop(thread: Rc<Thread>, slot: usize) {
    let job = &thread.job;
    let replicas = thread.requests.replicas();
    let mut connections: Vec<Option<Connection>> = (0..replicas).map(|_| None).collect();
    // One timer per slot, re-armed lazily (see `connection::within`).
    let mut timer = pin!(tokio::time::sleep(job.timeout));
    // Since when every connection this slot tried was refused.
    let mut refused_since: Option<Instant> = None;
    loop {
        if job.gave_up.load(Ordering::Relaxed) {
            break;
        }
        let Some(index) = job.claim() else {
            break;
        };
        let op = job.plan.op(index);
        let replica = if replicas == 1 {
            0
        } else {
            replica_of(index, replicas)
        };
        let started = Instant::now();
        let request = InFlight {
            index,
            op,
            replica,
            started,
        };
        thread.in_flight.borrow_mut()[slot] = Some(request);
        let key = job.keys.map(|run| idempotency_key(run, index));
        let (exchange, earlier) =
            send(&thread, &mut connections, timer.as_mut(), request, key).await;
        let ended = Instant::now();
        thread.in_flight.borrow_mut()[slot] = None;
        let refused = matches!(exchange, Exchange::NotSent);
        // A 503 with `Retry-After` asks this client to slow down: the slot pauses before its
        // next request instead of hammering (retries of the same operation have waited already).
        let pause = match &exchange {
            Exchange::Answer {
                hint: Some(Hint::RetryAfter(asked)),
                ..
            } => job.retry_wait(*asked),
            _ => None,
        };
        let recorded = thread.stats.borrow_mut().record_attempts(
            &job.reading,
            op,
            exchange,
            ended - started,
            || job.claimed.load(Ordering::Relaxed),
            earlier,
        );
        thread.record(slot, request, recorded, ended);
        if let Some(pause) = pause {
            thread.stats.borrow_mut().retry_after_waits += 1;
            tokio::time::sleep(pause).await;
        }
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
