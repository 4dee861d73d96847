//! The work a request does between reading the balance and writing it back.
//!
//! A real handler does something slow there (a query, a call to a fraud check): that is the window in
//! which another request can read the same balance. `--work` sets it:
//!
//! | spec           | what happens in the window                                              |
//! |----------------|-------------------------------------------------------------------------|
//! | `none`         | nothing: no await point, the window is a few instructions wide          |
//! | `yield`        | one await point (`tokio::task::yield_now`)                              |
//! | `2ms`          | a sleep of that long                                                    |
//! | `0ms..5ms`     | a sleep of a random length in the range, like the classic threading demo |
//! | `rendezvous:N` | wait until N requests are in the window (or a second passes), then go on |
//!
//! `rendezvous` makes a race deterministic: with `rendezvous:2`, two parallel deposits both read the
//! balance before either writes, every time. Tests that need an exact count of lost updates use it.
//!
//! The work is also where a stopping server cuts requests short: [`Work::stop`] ends every window
//! still open, and the request answers 503 having written nothing. Cutting there, rather than
//! anywhere in a request, matters for the database stores: a write already sent may commit, so only
//! a request that has not yet sent its write can truthfully say it changed nothing.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Notify};

use crate::domain::error::AccountError;
use crate::duration::{format_duration, parse_duration};

/// How long a request waits at a rendezvous for the others before it goes on alone.
pub(crate) const RENDEZVOUS_TIMEOUT: Duration = Duration::from_secs(1);

/// The `--work` setting, as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkSpec {
    /// No await point at all.
    None,
    /// One await point.
    Yield,
    /// Sleep this long.
    Sleep(Duration),
    /// Sleep a uniformly random time in `[min, max]`.
    Random { min: Duration, max: Duration },
    /// Wait until this many requests are in the window.
    Rendezvous { parties: usize },
}

impl FromStr for WorkSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        match spec {
            "none" => return Ok(WorkSpec::None),
            "yield" => return Ok(WorkSpec::Yield),
            _ => {}
        }
        if let Some(parties) = spec.strip_prefix("rendezvous:") {
            return match parties.parse::<usize>() {
                Ok(parties) if (1..=10_000).contains(&parties) => {
                    Ok(WorkSpec::Rendezvous { parties })
                }
                _ => Err(format!(
                    "`{parties}` is not a party count: rendezvous takes 1 to 10000 (e.g. `rendezvous:2`)"
                )),
            };
        }
        if let Some((min, max)) = spec.split_once("..") {
            let (min, max) = (parse_duration(min)?, parse_duration(max)?);
            if min > max {
                return Err(format!("`{spec}`: the range must run from short to long"));
            }
            return Ok(WorkSpec::Random { min, max });
        }
        parse_duration(spec).map(WorkSpec::Sleep).map_err(|e| {
            format!("{e}; work is `none`, `yield`, a duration (`2ms`), a range (`0ms..5ms`) or `rendezvous:N`")
        })
    }
}

impl fmt::Display for WorkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkSpec::None => f.write_str("none"),
            WorkSpec::Yield => f.write_str("yield"),
            WorkSpec::Sleep(duration) => f.write_str(&format_duration(*duration)),
            WorkSpec::Random { min, max } => {
                write!(f, "{}..{}", format_duration(*min), format_duration(*max))
            }
            WorkSpec::Rendezvous { parties } => write!(f, "rendezvous:{parties}"),
        }
    }
}

impl WorkSpec {
    /// The longest one request's work can take (a rendezvous waits at most its timeout).
    pub fn longest(self) -> Duration {
        match self {
            WorkSpec::None | WorkSpec::Yield => Duration::ZERO,
            WorkSpec::Sleep(duration) => duration,
            WorkSpec::Random { max, .. } => max,
            WorkSpec::Rendezvous { .. } => RENDEZVOUS_TIMEOUT,
        }
    }
}

/// The work, ready to run: a spec, the rendezvous state it needs, and the signal that cuts it short.
#[derive(Debug)]
pub(crate) struct Work {
    spec: WorkSpec,
    rendezvous: Option<Rendezvous>,
    stopping: watch::Sender<bool>,
}

impl Work {
    /// Builds the work for one account.
    pub(crate) fn new(spec: WorkSpec) -> Self {
        let rendezvous = match spec {
            WorkSpec::Rendezvous { parties } => Some(Rendezvous::new(parties, RENDEZVOUS_TIMEOUT)),
            _ => None,
        };
        Self {
            spec,
            rendezvous,
            stopping: watch::Sender::new(false),
        }
    }

    /// The spec this work was built from.
    pub(crate) fn spec(&self) -> WorkSpec {
        self.spec
    }

    /// Does the work, or answers [`AccountError::Stopped`] if the server stops first.
    /// Cancel-safe: a request dropped here has written nothing.
    pub(crate) async fn run(&self) -> Result<(), AccountError> {
        if self.spec == WorkSpec::None {
            // No await point, so nothing to cut short: skip the stop signal on the hot path.
            return Ok(());
        }
        self.unless_stopped(self.wait()).await
    }

    /// Runs `wait` (the work, or a wait for a guard) unless the server stops first.
    pub(crate) async fn unless_stopped<T>(
        &self,
        wait: impl std::future::Future<Output = T>,
    ) -> Result<T, AccountError> {
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            done = wait => Ok(done),
            _ = stopping.wait_for(|stopping| *stopping) => Err(AccountError::Stopped),
        }
    }

    /// Ends every window still open, now and from now on.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    async fn wait(&self) {
        match self.spec {
            WorkSpec::None => {}
            WorkSpec::Yield => tokio::task::yield_now().await,
            WorkSpec::Sleep(duration) => tokio::time::sleep(duration).await,
            WorkSpec::Random { min, max } => {
                let nanos = rand::rng().random_range(min.as_nanos()..=max.as_nanos());
                // Both ends are durations `--work` accepted (at most an hour), so the draw fits a u64.
                let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
                tokio::time::sleep(Duration::from_nanos(nanos)).await;
            }
            WorkSpec::Rendezvous { .. } => {
                if let Some(rendezvous) = &self.rendezvous {
                    rendezvous.meet().await;
                }
            }
        }
    }
}

/// A meeting point: arrivals wait until `parties` of them are there, then all go on together.
///
/// Arrivals form generations: the arrival that completes a generation releases it and the next
/// arrival starts a new one. One that waits longer than the timeout goes on alone, and one whose
/// request is dropped while waiting leaves, so a missing party never holds the others forever.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    parties: usize,
    timeout: Duration,
    state: Mutex<Generation>,
    released: Notify,
}

#[derive(Debug, Default)]
struct Generation {
    number: u64,
    waiting: usize,
}

impl Rendezvous {
    /// A rendezvous of `parties` arrivals that gives up on the rest after `timeout`.
    pub(crate) fn new(parties: usize, timeout: Duration) -> Self {
        Self {
            parties,
            timeout,
            state: Mutex::new(Generation::default()),
            released: Notify::new(),
        }
    }

    /// Arrives and waits for the others, or for the timeout.
    pub(crate) async fn meet(&self) {
        let (generation, released) = {
            let mut state = self.lock();
            if state.waiting + 1 >= self.parties {
                state.number += 1;
                state.waiting = 0;
                drop(state);
                self.released.notify_waiters();
                return;
            }
            state.waiting += 1;
            // Created under the lock, so the release that needs us cannot happen before we listen.
            (state.number, self.released.notified())
        };
        let _leave = Leave {
            rendezvous: self,
            generation,
        };
        let _ = tokio::time::timeout(self.timeout, released).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        // Nothing panics while holding this lock, but a poisoned lock must not take the server down.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes a waiter out of its generation when it times out or its request is dropped.
struct Leave<'a> {
    rendezvous: &'a Rendezvous,
    generation: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut state = self.rendezvous.lock();
        if state.number == self.generation {
            state.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn specs_parse_and_print_back() {
        for spec in ["none", "yield", "2ms", "0ms..5ms", "rendezvous:2", "500us"] {
            let parsed: WorkSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(parsed.to_string(), spec);
        }
        for bad in ["", "fast", "rendezvous:0", "rendezvous:x", "5ms..1ms", "5"] {
            assert!(
                bad.parse::<WorkSpec>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rendezvous_releases_its_parties_together() {
        let rendezvous = Arc::new(Rendezvous::new(3, Duration::from_secs(60)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let rendezvous = rendezvous.clone();
                tokio::spawn(async move { rendezvous.meet().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "nobody waited for the timeout"
        );
        assert_eq!(rendezvous.lock().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lonely_arrival_goes_on_after_the_timeout_and_leaves_no_trace() {
        let rendezvous = Rendezvous::new(2, Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        rendezvous.meet().await;
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(rendezvous.lock().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_arrival_does_not_count_for_the_next_pair() {
        let rendezvous = Rendezvous::new(2, Duration::from_secs(60));
        let waiting = rendezvous.meet();
        let cancelled = tokio::time::timeout(Duration::from_millis(10), waiting).await;
        assert!(cancelled.is_err());
        assert_eq!(rendezvous.lock().waiting, 0);
    }
}
