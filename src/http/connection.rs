//! One client connection: hyper's HTTP/1.1 with the limits that stop a slow, idle or greedy client
//! from holding more than its share, and the checks of a request's framing hyper leaves to us.
//!
//! - A connection that is waiting for a request's head (a new one that has sent nothing, a slow
//!   one that sends its head a line at a time, an idle keep-alive one) is closed once it has waited
//!   between one and two header timeouts. A watchdog per connection looks every header timeout at
//!   two counters the requests bump as they start and finish; if nothing started or finished since
//!   its last look and nothing is in flight, the connection has been waiting for a head all that
//!   time. hyper's own `header_read_timeout` does the same to the millisecond, but arms and
//!   disarms a timer for every request, which measured 7 % of the server's instructions per request
//!   (BENCHMARKS.md); the watchdog costs two uncontended atomic additions per request.
//! - A head may hold [`MAX_HEAD_BYTES`]; past it hyper answers 431 and closes, so an unfinished
//!   header holds at most that much memory.
//! - The body timeout is the body extractor's ([`crate::http::routes`]): only the routes that read a
//!   body pay for it.
//!
//! The errors hyper answers by itself before a request reaches the router (400 for a malformed
//! head, 414, 431) have empty bodies: hyper writes a bare status line for them and has no hook to
//! add a body (`Server::on_error` in hyper's `proto/h1/role.rs`). Everything the router answers is
//! a problem document.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::header::{CONNECTION, HOST, TRANSFER_ENCODING};
use axum::http::{HeaderValue, Method, Request, Version};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use crate::chaos::Chaos;
use crate::config::ServerConfig;
use crate::domain::idempotency::REPLAYED_HEADER;
use crate::http::host::Hosts;
use crate::http::live;
use crate::http::metrics::{Metrics, Route};
use crate::http::problem::Problem;
use crate::http::progress::Progress;
use crate::http::registry::{Registration, Registry};
use crate::wire::{paths, MAX_HEAD_BYTES};

/// How every connection of one server is served.
#[derive(Debug)]
pub(crate) struct Http {
    builder: http1::Builder,
    header_timeout: Duration,
    max_age: Duration,
    max_requests: u64,
    metrics: Arc<Metrics>,
    chaos: Chaos,
    hosts: Arc<Hosts>,
    /// One permit per open live-page stream.
    viewers: Arc<Semaphore>,
    max_viewers: usize,
}

/// The error a connection ends with when chaos drops an answer: hyper closes the connection
/// without writing anything when its service fails.
#[derive(Debug)]
struct DroppedByChaos;

impl std::fmt::Display for DroppedByChaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("chaos dropped the answer of an applied request (--chaos drop-after-apply)")
    }
}

impl std::error::Error for DroppedByChaos {}

/// What an open connection holds: a connection slot and its place in the [`Registry`], or, once
/// it carries a live-page stream, a viewer's permit instead (a stream holds no connection slot).
#[derive(Debug)]
struct Seat {
    slot: Option<OwnedSemaphorePermit>,
    registration: Option<Registration>,
    viewer: Option<OwnedSemaphorePermit>,
}

impl Seat {
    /// Trades the connection slot for `viewer`: the connection now carries a stream.
    fn become_viewer(&mut self, viewer: OwnedSemaphorePermit) {
        self.slot = None;
        self.registration = None;
        self.viewer = Some(viewer);
    }
}

impl Http {
    /// HTTP/1.1 with keep-alive and the limits of `settings`; every answer is counted in
    /// `metrics`, and only requests naming one of `hosts` are served.
    pub(crate) fn new(settings: &ServerConfig, metrics: Arc<Metrics>, hosts: Hosts) -> Self {
        let mut builder = http1::Builder::new();
        // The header timeout is the watchdog's (see the module docs), not hyper's timer.
        builder
            .header_read_timeout(None)
            .max_buf_size(MAX_HEAD_BYTES);
        Self {
            builder,
            header_timeout: settings.header_timeout,
            max_age: settings.max_connection_age,
            max_requests: settings.max_requests_per_connection,
            metrics,
            chaos: settings.chaos,
            hosts: Arc::new(hosts),
            viewers: Arc::new(Semaphore::new(settings.max_viewers)),
            max_viewers: settings.max_viewers,
        }
    }

    /// Serves `tcp` until the client closes it, a limit cuts it off, the accept loop asks it to
    /// make room (through `registry`), or the server stops (then the request in flight finishes
    /// first). The connection's `slot` is given back when it ends, or when it starts a stream.
    pub(crate) async fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        router: Router,
        stopping: watch::Receiver<bool>,
        slot: OwnedSemaphorePermit,
        registry: Arc<Registry>,
    ) {
        // Small requests and answers: send each at once rather than waiting to batch (Nagle).
        let _ = tcp.set_nodelay(true);
        let progress = Arc::new(Progress::default());
        let seat = Arc::new(Mutex::new(Seat {
            slot: Some(slot),
            registration: Some(registry.register(progress.clone())),
            viewer: None,
        }));
        let service = self.service(Mutex::new(router), progress.clone(), seat);
        let connection = self
            .builder
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        // The watchdog runs in a task of its own and sends one message when this connection must
        // end, so that every wake-up of this task polls one cheap receiver rather than a timer
        // and the stop signal (measured in BENCHMARKS.md).
        let (close, closing) = oneshot::channel();
        let limits = (self.header_timeout, self.max_age);
        tokio::spawn(watchdog(progress, limits, stopping, close));
        tokio::pin!(connection);
        let ended = tokio::select! {
            biased;
            result = connection.as_mut() => Some(result),
            why = closing => {
                if let Ok(Close::Stalled) = why {
                    tracing::debug!("closing a connection that sent no request head in time");
                    return;
                }
                None
            }
        };
        let result = if let Some(result) = ended {
            result
        } else {
            // Finish the request in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        };
        if let Err(error) = result {
            // A client that timed out, sent garbage or went away: its business, not the server's.
            tracing::debug!(%error, "connection ended with an error");
        }
    }

    /// The service of one connection: the checks hyper leaves to us, the router, the metrics and
    /// the connection's limits.
    fn service(
        &self,
        router: Mutex<Router>,
        progress: Arc<Progress>,
        seat: Arc<Mutex<Seat>>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = axum::response::Response,
        Error = DroppedByChaos,
        Future = impl Future<Output = Result<axum::response::Response, DroppedByChaos>> + Send,
    > + Send {
        // A handle of this connection's own, cloned for each request: its reference count is
        // touched by this connection alone, where the server-wide one would be a cache line every
        // worker thread fights over on every request.
        let metrics = Arc::new(self.metrics.clone());
        let (chaos, max_requests) = (self.chaos, self.max_requests);
        let (hosts, viewers, max_viewers) =
            (self.hosts.clone(), self.viewers.clone(), self.max_viewers);
        service_fn(move |request: Request<Incoming>| {
            let number = progress.start();
            let route = Route::of(request.uri().path());
            let mut problem = framing_problem(&request)
                .map(close_after)
                .or_else(|| misdirected(&hosts, &request));
            // Only a stream asks for a viewer's permit; every other request pays one comparison.
            let mut viewer = None;
            if route == Route::Live && problem.is_none() && is_stream(&request) {
                match admit_viewer(&viewers, max_viewers) {
                    Ok(permit) => viewer = Some((permit, seat.clone())),
                    Err(refused) => problem = Some(close_after(refused)),
                }
            }
            let changes = chaos.is_on() && changes_balance(&request);
            // Only deposits and withdrawals are timed: two clock reads, the rest a counter.
            let started = route.timed().map(|_| Instant::now());
            // Routed under this connection's own lock, not through a clone of the server-wide
            // router, whose count is a cache line every worker thread shares (BENCHMARKS.md).
            let answer = match problem {
                Some(answer) => Err(answer),
                None => Ok(router
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .call(request)),
            };
            let metrics = metrics.clone();
            let progress = progress.clone();
            async move {
                let mut response = match answer {
                    Err(answer) => answer,
                    Ok(routed) => match routed.await {
                        Ok(response) => response,
                        Err(infallible) => match infallible {},
                    },
                };
                match viewer {
                    // A stream stays in flight for the watchdog, which so never takes it for idle.
                    Some((permit, seat)) if response.status().is_success() => {
                        seat.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .become_viewer(permit);
                    }
                    _ => {
                        progress.finish();
                    }
                }
                if changes && applied(&response) && chaos.drops_answer() {
                    return Err(DroppedByChaos);
                }
                if number >= max_requests || progress.is_retiring() {
                    // hyper closes the connection once this answer is written.
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                let elapsed = started.map(|started| started.elapsed());
                metrics.record(route, response.status().as_u16(), elapsed);
                Ok(response)
            }
        })
    }
}

/// A live-page stream's permit, or, when every stream is taken, the refusal.
fn admit_viewer(
    viewers: &Arc<Semaphore>,
    max_viewers: usize,
) -> Result<OwnedSemaphorePermit, Problem> {
    viewers
        .clone()
        .try_acquire_owned()
        .map_err(|_| Problem::TooManyViewers { limit: max_viewers })
}

/// Why a connection's watchdog ends it.
#[derive(Debug)]
enum Close {
    /// The server is stopping, or the connection retires: finish the request in flight, then
    /// close.
    Stopping,
    /// The connection waited too long for a request head: close at once.
    Stalled,
}

/// Watches one connection: tells it to end when the server stops, when it has waited too long
/// for a request head, or when it retires (too old, or asked to make room) and its client is
/// quiet; ends by itself when the connection ends first.
async fn watchdog(
    progress: Arc<Progress>,
    (header_timeout, max_age): (Duration, Duration),
    mut stopping: watch::Receiver<bool>,
    mut close: oneshot::Sender<Close>,
) {
    let why = tokio::select! {
        () = close.closed() => return,
        _ = stopping.wait_for(|stopping| *stopping) => Close::Stopping,
        () = progress.stalled(header_timeout) => Close::Stalled,
        () = progress.retired(max_age) => Close::Stopping,
    };
    // The connection may have ended meanwhile; then nobody needs to hear it.
    let _ = close.send(why);
}

/// Whether the request opens the live page's event stream.
fn is_stream<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET && request.uri().path() == live::EVENTS
}

/// The 421 answer to a request whose `Host` this server does not serve ([`crate::http::host`]).
fn misdirected<B>(hosts: &Hosts, request: &Request<B>) -> Option<axum::response::Response> {
    let host = request.headers().get(HOST)?;
    if hosts.allows(host.as_bytes()) {
        return None;
    }
    let host = String::from_utf8_lossy(host.as_bytes()).into_owned();
    Some(Problem::MisdirectedRequest(host).into_response())
}

/// Whether the request is a deposit or a withdrawal.
fn changes_balance<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST
        && matches!(request.uri().path(), paths::DEPOSIT | paths::WITHDRAW)
}

/// Whether the answer says this request applied something (a replay applied nothing).
fn applied(response: &axum::response::Response) -> bool {
    response.status().is_success() && !response.headers().contains_key(&REPLAYED_HEADER)
}

/// What is wrong with how a request is framed, beyond what hyper checks.
fn framing_problem<B: Body>(request: &Request<B>) -> Option<Problem> {
    let headers = request.headers();
    // RFC 9112, section 3.2: a server must answer 400 to an HTTP/1.1 request without exactly one Host.
    // One lookup in the common case: when no header name is repeated, Host cannot be.
    if request.version() == Version::HTTP_11
        && (!headers.contains_key(HOST)
            || (headers.len() != headers.keys_len() && headers.get_all(HOST).iter().count() != 1))
    {
        return Some(Problem::BadHost);
    }
    // hyper decodes `chunked` and hands over whatever coding lies beneath it as if it were the body;
    // RFC 9112, section 6.1: a coding the server does not understand gets 501. A body of known
    // length has no transfer coding, so most requests skip this lookup.
    if request.body().size_hint().exact().is_some() {
        return None;
    }
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(coding) = codings.find(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return Some(Problem::UnsupportedTransferCoding(
            String::from_utf8_lossy(coding.as_bytes()).into_owned(),
        ));
    }
    None
}

/// The problem, on a connection that closes after it: a request framed wrongly may have left
/// bytes behind that cannot be trusted to start the next one.
fn close_after(problem: Problem) -> axum::response::Response {
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
