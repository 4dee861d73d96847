//! A connection's progress: how many of its requests have started and finished, and whether it
//! is retiring. The connection's service bumps the counts; its watchdog and the accept loop's
//! registry of open connections read them, so it sits below both (`crate::http::connection`,
//! `crate::http::registry`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a retiring connection's client must have sent nothing before it is closed at once
/// rather than by `Connection: close` on its next answer: long enough that a client busy on its
/// connection is never cut between two requests, short enough that a newcomer hardly waits.
const QUIET: Duration = Duration::from_millis(50);

/// How many of a connection's requests have started (their head arrived) and finished (their
/// answer is ready), for the watchdog that closes a connection waiting too long for a head; and
/// whether the connection is retiring.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    started: AtomicU64,
    finished: AtomicU64,
    retiring: AtomicBool,
    retire: Notify,
}

impl Progress {
    /// Counts a request whose head arrived; returns how many this connection has started.
    pub(crate) fn start(&self) -> u64 {
        self.started.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a request whose answer is ready.
    pub(crate) fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    fn now(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Relaxed),
            self.finished.load(Ordering::Relaxed),
        )
    }

    /// Whether the connection was asked to close, or is older than its maximum age.
    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Relaxed)
    }

    /// Asks the connection to close: `Connection: close` on its next answer, or at once if its
    /// client is quiet.
    pub(crate) fn retire(&self) {
        if !self.retiring.swap(true, Ordering::Relaxed) {
            self.retire.notify_one();
        }
    }

    /// Completes once the connection has been waiting for a request head for at least `timeout`
    /// (and at most twice that): nothing started or finished over one whole period, and nothing
    /// is in flight. A request that runs longer than the timeout is never cut here.
    pub(crate) async fn stalled(&self, timeout: Duration) {
        let mut seen = self.now();
        loop {
            tokio::time::sleep(timeout).await;
            let now = self.now();
            if now == seen && now.0 == now.1 {
                return;
            }
            seen = now;
        }
    }

    /// Completes once the connection retires (asked to, or `max_age` old) and its client has
    /// been quiet for [`QUIET`] with nothing in flight. Until then an answer closes it.
    pub(crate) async fn retired(&self, max_age: Duration) {
        tokio::select! {
            () = self.retire.notified() => {}
            () = tokio::time::sleep(max_age) => self.retiring.store(true, Ordering::Relaxed),
        }
        let mut seen = self.now();
        loop {
            tokio::time::sleep(QUIET).await;
            let now = self.now();
            if now == seen && now.0 == now.1 {
                return;
            }
            seen = now;
        }
    }
}
