//! The progress bar, drawn from a ticker that reads the shared request counter every 100 ms.
//!
//! Nothing on the hot path touches the bar: workers only bump the counter they already need to
//! claim requests, so the numbers are the same with and without the display.
//!
//! A terminal that goes away mid-run cannot take the run down: indicatif ignores the errors of
//! the draws these calls make (`set_position`, `set_message`, `finish_and_clear`); only methods
//! we do not call (`set_tab_width`, `MultiProgress::suspend`) unwrap theirs.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::plan::load::Limit;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A running progress bar; [`Progress::finish`] clears it.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts a bar on stderr, unless it is not wanted or stderr is not a terminal.
    pub(crate) fn start(limit: Limit, claimed: Arc<AtomicU64>, wanted: bool) -> Option<Progress> {
        if !wanted || !std::io::stderr().is_terminal() {
            return None;
        }
        let started = Instant::now();
        let (bar, template) = match limit {
            Limit::Count(count) => (
                ProgressBar::new(count),
                "{bar:40.cyan/blue} {human_pos}/{human_len} requests  {elapsed}, eta {eta}",
            ),
            Limit::Duration(duration) => (
                ProgressBar::new(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
                "{bar:40.cyan/blue} {elapsed} / {msg}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let ticking = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                let requests = claimed.load(Ordering::Relaxed);
                match limit {
                    Limit::Count(count) => ticking.set_position(requests.min(count)),
                    Limit::Duration(duration) => {
                        let elapsed = started.elapsed().min(duration);
                        ticking
                            .set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                        ticking.set_message(format!("{duration:?}, {requests} requests"));
                    }
                }
            }
        });
        Some(Progress { bar, ticker })
    }

    /// Stops the ticker and clears the bar.
    pub(crate) fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
