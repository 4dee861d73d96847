//! One in-flight slot's HTTP/1.1 keep-alive connection: open it, send on it, read the whole
//! answer before a deadline, and reopen it when the server closed it.
//!
//! Why hyper's connection API and not reqwest: with reqwest (one client per thread) the hot loop
//! reached ~100k req/s on `POST /deposit` (mutex, `--work none`, c=64, 2 cores shared with the
//! server) where oha reached ~147k. A profile put our own code under 1% and reqwest, hyper-util's
//! pool, `url` and `idna` on top (reqwest's redirect layer re-parses the URL of every response).
//! Talking to `hyper::client::conn::http1` directly removes those layers: the same benchmark
//! (`load/bench/bench.py clients`) measures racebank-load at 0.95x to 1.01x of oha (BENCHMARKS.md).
//! The reads around the run ([`crate::engine::probe`]) still use reqwest.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant as TokioInstant, Sleep};

/// Connections one request may go through when the previous ones closed before it was sent.
const ATTEMPTS: usize = 3;

/// The longest answer body read, here and around the run. An account's answers are a few hundred
/// bytes; past this the server is broken or hostile, and reading on would let it fill the
/// client's memory (a 2 GB body once took 1.98 GB).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// What became of one request.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// An HTTP answer; the body is `None` when it broke off or timed out.
    Answer {
        /// The status.
        status: StatusCode,
        /// The whole body.
        body: Option<Bytes>,
        /// What a 503 or a redirect asks of the client; `None` for any other status, so a 2xx
        /// costs no header lookup.
        hint: Option<Hint>,
    },
    /// An HTTP answer whose body was longer than `MAX_BODY`: the rest was never read.
    Oversized {
        /// The status.
        status: StatusCode,
    },
    /// No connection could carry it (refused, failed or timed out before anything was sent).
    NotSent,
    /// No answer within the timeout after it was sent.
    TimedOut,
    /// The connection failed after it was sent.
    Broken,
}

/// What an answer asks of the client besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A 503's `Retry-After`, in seconds (the HTTP-date form is not read).
    RetryAfter(Duration),
    /// A redirect's `Location`, as sent.
    Location(HeaderValue),
}

/// A keep-alive connection and the task that drives it; dropping it closes the socket.
pub(crate) struct Connection {
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
pub(crate) async fn exchange(
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
        let hint = hint(status, response.headers());
        let body = Limited::new(response.into_body(), MAX_BODY);
        let body = match within(timer.as_mut(), deadline, body.collect()).await {
            Some(Ok(collected)) => Some(collected.to_bytes()),
            // Too long, broken off or too slow: the rest of the body is never read, and dropping
            // the connection closes its socket.
            Some(Err(error)) if error.is::<LengthLimitError>() => {
                *slot = None;
                return Exchange::Oversized { status };
            }
            _ => {
                *slot = None;
                None
            }
        };
        return Exchange::Answer { status, body, hint };
    }
    Exchange::NotSent
}

/// The `Retry-After` of an answer, when it is a number of seconds.
fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse().ok().map(Duration::from_secs)
}

/// What an answer's headers add to its status: how long a 503 asks to wait, where a redirect
/// points.
fn hint(status: StatusCode, headers: &hyper::HeaderMap) -> Option<Hint> {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        retry_after(headers).map(Hint::RetryAfter)
    } else if status.is_redirection() {
        headers
            .get(hyper::header::LOCATION)
            .cloned()
            .map(Hint::Location)
    } else {
        None
    }
}
