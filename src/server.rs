//! Serving the account: `serve(listener, config, shutdown)`.
//!
//! The listener and the shutdown future are parameters so that tests (and the load generator's demo)
//! bind `127.0.0.1:0` and stop the real server when they are done.
//!
//! Shutdown is graceful but bounded: once `shutdown` completes, no new connection is accepted,
//! requests in flight get `shutdown_grace` to finish, and then the account cuts short whatever is
//! still waiting or working (each answers 503 having written nothing). The bound sits here, once,
//! rather than as a timer on every request.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::account::Account;
use crate::config::Config;
use crate::error::{AccountError, OpenError};
use crate::ledger::Stats;
use crate::routes;

/// How long cut-short requests get to send their 503 before the server stops regardless.
const LAST_ANSWERS: Duration = Duration::from_secs(1);

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
    let account = Arc::new(Account::open(&config.account).await?);
    let app = routes::app(account.clone());
    tracing::info!(
        store = config.account.store.name(),
        account = %config.account.id,
        mode = %config.account.mode,
        work = %config.account.work,
        initial_balance = config.account.initial_balance,
        pool_size = config.account.store.pool_size(),
        addr = %listener.local_addr()?,
        "racebank is listening"
    );
    // Small requests and answers: send each at once rather than waiting to batch (Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (draining, drain_started) = oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = draining.send(());
        })
        .into_future();
    let grace_over = async {
        if drain_started.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(config.server.shutdown_grace).await;
    };
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = grace_over => {
            tracing::warn!(
                grace = ?config.server.shutdown_grace,
                "requests still in flight after the shutdown grace period; cutting them short"
            );
            account.stop();
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

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
