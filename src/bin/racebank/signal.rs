//! The signals that stop the server: the first asks for a graceful stop, a second one stops at once.
//!
//! SIGINT (Ctrl-C), SIGTERM, SIGHUP (the terminal went away) and SIGQUIT all mean "stop": each is
//! caught, so that the server drains its requests and logs its final stats rather than dying with
//! the default action. An operator who does not want to wait for the drain sends a second signal.

/// Completes on the first stop signal, and from then on stops the process at once, with a failure
/// status, on the next one. For the `racebank` binary: a library user passes its own future.
///
/// The signals are caught from the call on, not from the first poll: a signal sent as soon as the
/// server says it is listening must not meet the default action, which kills without a drain.
/// Call it inside the runtime.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let signals = StopSignals::listen();
    wait_then_watch(signals)
}

async fn wait_then_watch(mut signals: StopSignals) {
    let signal = signals.next().await;
    tracing::info!(
        signal,
        "shutting down: finishing the requests in flight (send the signal again to stop at once)"
    );
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::error!(
            signal,
            "second stop signal: stopping at once, without waiting for the requests in flight"
        );
        // The exit status a shell reports for a process killed by the signal: 128 + its number.
        std::process::exit(128 + number(signal));
    });
}

fn number(signal: &str) -> i32 {
    match signal {
        "SIGHUP" => 1,
        "SIGINT" => 2,
        "SIGQUIT" => 3,
        _ => 15,
    }
}

/// The stop signals, registered once so that none is missed between the first and the second.
struct StopSignals {
    #[cfg(unix)]
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    #[cfg(unix)]
    fn listen() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let kinds = [
            ("SIGINT", SignalKind::interrupt()),
            ("SIGTERM", SignalKind::terminate()),
            ("SIGHUP", SignalKind::hangup()),
            ("SIGQUIT", SignalKind::quit()),
        ];
        let streams = kinds
            .into_iter()
            .filter_map(|(name, kind)| match signal(kind) {
                Ok(stream) => Some((name, stream)),
                Err(error) => {
                    tracing::warn!(%error, signal = name, "cannot catch this signal");
                    None
                }
            })
            .collect();
        Self { streams }
    }

    /// The name of the next stop signal to arrive.
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (name, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    #[cfg(not(unix))]
    fn listen() -> Self {
        Self {}
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "SIGINT"
    }
}
