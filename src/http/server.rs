//! Serving the account: `serve(listener, config, shutdown)`.
//!
//! The listener and the shutdown future are parameters so that tests (and the load generator's demo)
//! bind `127.0.0.1:0` and stop the real server when they are done.
//!
//! The accept loop is ours rather than `axum::serve`'s, for the limits it lacks (docs/hardening.md):
//! at most `max_connections` connections at once, each cut off by the timeouts of
//! [`crate::http::connection`]. Past the limit, the loop holds the one connection it accepted and
//! asks the oldest open connection to make room ([`crate::http::registry`]): it closes at once if
//! its client is quiet, or says `Connection: close` on its next answer; every 200 ms without a free
//! slot, the next oldest is asked too. Further connections wait in the kernel's listen backlog
//! rather than being refused, so a burst of clients is served a little later instead of failing,
//! and a client that holds connections (trickling requests, idle keep-alive) cannot keep a newcomer
//! out. Live-page streams hold no slot: they count against `max_viewers` instead. Running out of
//! file descriptors is an error in the log, retried with a backoff rather than a hot loop.
//!
//! Shutdown is graceful but bounded: once `shutdown` completes, no new connection is accepted,
//! requests in flight get `shutdown_grace` to finish, and then the account cuts short whatever is
//! still waiting or working (each answers 503 having written nothing). The bound sits here, once,
//! rather than as a timer on every request.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::account::Account;
use crate::bank::Bank;
use crate::config::{Config, ServerConfig};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::ledger::Stats;
use crate::http::connection::Http;
use crate::http::host::Hosts;
use crate::http::live;
use crate::http::metrics::Metrics;
use crate::http::registry::Registry;
use crate::http::routes;

/// How long cut-short requests get to send their 503 before the server stops regardless.
const LAST_ANSWERS: Duration = Duration::from_secs(1);

/// The first and the longest pause after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// How long a connection waiting for a slot gives the connection asked to make room before the
/// next oldest is asked too.
const RETIRE_AGAIN: Duration = Duration::from_millis(200);

/// How often, at most, the log says that the connection limit is holding connections back.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Why the server could not start, or could not report at the end.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The account could not be opened (an unreachable store, a mode the store does not run).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The final stats could not be read.
    #[error("cannot read the final stats: {0}")]
    Stats(#[from] AccountError),
}

/// Opens the account, serves it until `shutdown` completes, lets in-flight requests finish, and
/// returns the final stats.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Stats, ServeError> {
    config.validate()?;
    let account = Arc::new(Account::open(&config.account).await?);
    let bank = match &config.account.bank {
        Some(spec) => Some(Arc::new(Bank::open(&config.account, spec).await?)),
        None => None,
    };
    let (closer, closing) = live::closing();
    let metrics = Arc::new(Metrics::new());
    let app = routes::app(
        account.clone(),
        bank.clone(),
        metrics.clone(),
        config.server.body_timeout,
        (
            closing,
            live::keep_alive_every(config.server.header_timeout),
        ),
    );
    log_start(&config, listener.local_addr()?);
    let (draining, drain_started) = oneshot::channel::<()>();
    let server = accept(listener, app, metrics, &config.server, async move {
        shutdown.await;
        // Live-page streams never end by themselves; end them so they do not hold the drain.
        closer.close();
        let _ = draining.send(());
    });
    let grace_over = async {
        if drain_started.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(config.server.shutdown_grace).await;
    };
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => {}
        () = grace_over => {
            tracing::warn!(
                grace = ?config.server.shutdown_grace,
                "requests still in flight after the shutdown grace period; cutting them short"
            );
            account.stop();
            if let Some(bank) = &bank {
                bank.stop();
            }
            if tokio::time::timeout(LAST_ANSWERS, server).await.is_err() {
                tracing::warn!("connections still open after cutting requests short; stopping anyway");
            }
        }
    }
    let stats = account.stats().await?;
    tracing::info!(
        store = %stats.store,
        mode = %stats.mode,
        balance = stats.balance,
        expected_balance = %stats.expected_balance,
        lost_updates = stats.lost_updates,
        lost_net = %stats.lost_net,
        deposits = stats.deposit_count,
        withdrawals = stats.withdrawal_count,
        refused = stats.refused_count,
        "racebank stopped"
    );
    Ok(stats)
}

/// The start-up lines: what is served where, and a WARN for each setting that endangers it.
fn log_start(config: &Config, bound: std::net::SocketAddr) {
    tracing::info!(
        store = config.account.store.name(),
        account = %config.account.id,
        mode = %config.account.mode,
        section = config.account.mode.section(),
        work = %config.account.work,
        initial_balance = config.account.initial_balance,
        pool_size = config.account.store.pool_size(),
        addr = %bound,
        max_connections = config.server.max_connections,
        header_timeout = ?config.server.header_timeout,
        body_timeout = ?config.server.body_timeout,
        max_viewers = config.server.max_viewers,
        max_connection_age = ?config.server.max_connection_age,
        max_requests_per_connection = config.server.max_requests_per_connection,
        "racebank is listening"
    );
    if !bound.ip().is_loopback() {
        tracing::warn!(
            addr = %bound,
            "NOT LOOPBACK: this server has no authentication; anyone who can reach this port can \
             move money and reset the account"
        );
    }
    if config.server.chaos.is_on() {
        tracing::warn!(
            chaos = %config.server.chaos,
            "CHAOS IS ON: this server drops answers on purpose; never run it for real clients"
        );
    }
}

/// Accepts connections until `shutdown` completes, then waits for every connection to finish.
async fn accept(
    listener: TcpListener,
    app: Router,
    metrics: Arc<Metrics>,
    settings: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let hosts = match listener.local_addr() {
        Ok(bound) => Hosts::new(bound, &settings.allowed_hosts),
        // Unreachable for a bound listener; loopback and the allowed names still pass.
        Err(_) => Hosts::new(([127, 0, 0, 1], 0).into(), &settings.allowed_hosts),
    };
    let http = Arc::new(Http::new(settings, metrics, hosts));
    // One permit per open connection (live-page streams aside); all of them back means every
    // connection has ended.
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let registry = Arc::new(Registry::default());
    let (stop_connections, stopping) = watch::channel(false);
    let mut limit_warned = None;
    let mut backoff = ACCEPT_BACKOFF.0;
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            biased;
            () = &mut shutdown => break,
            tcp = accept_one(&listener, &mut backoff) => tcp,
        };
        let limit = settings.max_connections;
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = free_slot(&slots, &registry, limit, &mut limit_warned) => slot,
        };
        let serve = http
            .clone()
            .serve(tcp, app.clone(), stopping.clone(), slot, registry.clone());
        tokio::spawn(serve);
    }
    drop(listener);
    let _ = stop_connections.send(true);
    let everyone = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(everyone).await;
}

/// Waits for a connection slot for a connection just accepted. When every slot is taken, the
/// oldest connection is asked to make room (it closes at once if its client is quiet, otherwise
/// after its next answer), then the next oldest every [`RETIRE_AGAIN`] until a slot frees up:
/// a client holding a connection cannot keep a newcomer out. Says so, now and then, in the log.
async fn free_slot(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    max_connections: usize,
    warned: &mut Option<Instant>,
) -> OwnedSemaphorePermit {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return slot;
    }
    if warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_EVERY) {
        tracing::warn!(
            max_connections,
            "connection limit reached: the oldest connections are asked to close to make room"
        );
        *warned = Some(Instant::now());
    }
    loop {
        registry.retire_oldest();
        let wait = tokio::time::timeout(RETIRE_AGAIN, slots.clone().acquire_owned());
        if let Ok(slot) = wait.await {
            return slot.expect("the connection slots are never closed");
        }
    }
}

/// Accepts one connection, riding out failures: those of one connection are skipped, and those of
/// the server (no file descriptors left) are logged as errors and retried after a growing pause.
async fn accept_one(listener: &TcpListener, backoff: &mut Duration) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                *backoff = ACCEPT_BACKOFF.0;
                return tcp;
            }
            Err(error) if is_connection_error(&error) => {
                tracing::debug!(%error, "a connection failed before it was accepted");
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    retry_in = ?*backoff,
                    "cannot accept connections; if out of file descriptors, raise `ulimit -n` \
                     or lower --max-connections"
                );
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(ACCEPT_BACKOFF.1);
            }
        }
    }
}

/// An accept error that concerns only the connection being accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
