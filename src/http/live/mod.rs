//! The live page: `GET /` shows the account as it changes, fed by a server-sent event stream.
//!
//! | route                | what                                                        |
//! |----------------------|-------------------------------------------------------------|
//! | `GET /`              | the page (HTML, CSS and JavaScript compiled into the binary) |
//! | `GET /live/page.css` | its style                                                   |
//! | `GET /live/page.js`  | its script                                                  |
//! | `GET /live/events`   | `text/event-stream`: one `hello` with the numbers now, then a `stats` frame every [`TICK`] |
//!
//! When the server opened a bank (`--accounts`), every frame also carries the bank's books under
//! `bank`, with the first [`ACCOUNTS_SHOWN`] accounts (a bank may hold 1000, and the page redraws
//! them four times a second); `/stats` has every one.
//!
//! Nothing is fetched from anywhere else (the page's Content-Security-Policy says so), so it works
//! offline and on a projector in a room without Wi-Fi.
//!
//! The stream costs the request path nothing: no counter is added to deposits or withdrawals. Each
//! open stream reads the account's stats on its own timer, a few times a second, and derives req/s
//! from how the counts moved; with nobody watching there is no timer at all. The stats are the
//! account's, so when replicas share a store every page shows the account-wide numbers.
//!
//! A stream never ends by itself, and a graceful shutdown waits for every open response. So the
//! server hands the routes a [`Closing`] signal, and each stream ends as soon as shutdown begins:
//! an open page does not hold the server up.

pub(crate) mod lesson;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::account::Account;
use crate::domain::bank::BankStats;
use crate::domain::ledger::Stats;
use crate::http::bank::MaybeBank;
use crate::http::live::lesson::lesson;

/// How often an open stream samples the stats: often enough for a smooth chart, rare enough that a
/// room full of viewers costs the account nothing it would notice.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// req/s is averaged over about this long, so that a quiet tick does not make it flicker to zero.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// How many of the bank's accounts each frame carries: enough to see every account of a bank made
/// for a lesson, few enough that a frame of a 1000-account bank stays small (about 17 kB).
pub(crate) const ACCOUNTS_SHOWN: usize = 100;

/// The event stream's path.
pub(crate) const EVENTS: &str = "/live/events";

/// The longest pause between two keep-alive comments on a stream (`: keep-alive`): what proxies
/// and browsers expect of an idle event stream. A server with a shorter header timeout sends them
/// at least twice per timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a browser waits before reconnecting a dropped stream.
const RECONNECT: Duration = Duration::from_secs(1);

const PAGE: &str = include_str!("page.html");
const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// Everything the page loads comes from this server; nothing else may be fetched or run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Tells open streams that the server is shutting down.
#[derive(Debug)]
pub(crate) struct Closer(watch::Sender<bool>);

/// What each stream watches to know when to end (see [`Closer`]).
#[derive(Debug, Clone)]
pub(crate) struct Closing(watch::Receiver<bool>);

/// A closing signal and the handle that fires it.
pub(crate) fn closing() -> (Closer, Closing) {
    let (sender, receiver) = watch::channel(false);
    (Closer(sender), Closing(receiver))
}

impl Closer {
    /// Ends every open stream, now and for streams opened later.
    pub(crate) fn close(&self) {
        self.0.send_replace(true);
    }
}

impl Closing {
    /// Completes once shutdown has begun (or the server that could fire it is gone).
    async fn closed(&mut self) {
        let _ = self.0.wait_for(|closing| *closing).await;
    }
}

/// How often a stream sends a keep-alive comment on a server whose header timeout is
/// `header_timeout`.
pub(crate) fn keep_alive_every(header_timeout: Duration) -> Duration {
    KEEP_ALIVE
        .min(header_timeout / 2)
        .max(Duration::from_millis(1))
}

/// The page's routes, for `routes::app` to merge; each stream sends a keep-alive comment every
/// `keep_alive`.
pub(crate) fn routes<S>(closing: Closing, keep_alive: Duration) -> Router<S>
where
    Arc<Account>: FromRef<S>,
    MaybeBank: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(page))
        .route("/live/page.css", get(css))
        .route("/live/page.js", get(js))
        .route(
            EVENTS,
            get(
                move |State(account): State<Arc<Account>>, State(bank): State<MaybeBank>| {
                    events(account, bank, closing.clone(), keep_alive)
                },
            ),
        )
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        JS,
    )
}

#[allow(
    clippy::unused_async,
    reason = "an axum handler; the stream it returns does the awaiting"
)]
async fn events(
    account: Arc<Account>,
    bank: MaybeBank,
    closing: Closing,
    keep_alive: Duration,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(TICK);
    // A viewer that falls behind wants the latest numbers, not a backlog of old ones.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut keep_alive = tokio::time::interval_at(Instant::now() + keep_alive, keep_alive);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let feed = Feed {
        account,
        bank,
        closing,
        ticks,
        keep_alive,
        rate: Rate::default(),
        greeted: false,
    };
    Sse::new(stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    }))
}

/// One viewer's stream: a `hello`, then a `stats` frame every tick until shutdown.
struct Feed {
    account: Arc<Account>,
    bank: MaybeBank,
    closing: Closing,
    ticks: Interval,
    /// A comment now and then, which shows a stalled store's stream to be alive still.
    keep_alive: Interval,
    rate: Rate,
    greeted: bool,
}

/// The first frame: what the account runs and what that means, and the numbers now, so that a
/// page shows them the moment it connects rather than a tick later.
#[derive(Debug, Serialize)]
struct Hello<'a> {
    mode: &'a str,
    work: &'a str,
    /// The mode's paragraph from [`lesson`](mod@crate::http::live::lesson), with `code` in backticks.
    lesson: Option<&'static str>,
    tick_ms: u128,
    #[serde(flatten)]
    frame: Frame<'a>,
}

/// Every later frame.
#[derive(Debug, Serialize)]
struct Frame<'a> {
    stats: &'a Stats,
    /// Requests decided (acknowledged or refused) per second, over about the last second.
    requests_per_second: f64,
    /// The bank's books, when the server opened a bank.
    #[serde(skip_serializing_if = "Option::is_none")]
    bank: Option<&'a LiveBank>,
}

/// The bank's books as `/stats` has them, but only the first [`ACCOUNTS_SHOWN`] accounts.
#[derive(Debug, Serialize)]
struct LiveBank {
    #[serde(flatten)]
    stats: BankStats,
    /// How many accounts the bank holds, of which `accounts` carries the first.
    account_count: usize,
}

impl LiveBank {
    fn new(mut stats: BankStats) -> Self {
        let account_count = stats.accounts.len();
        stats.accounts.truncate(ACCOUNTS_SHOWN);
        Self {
            stats,
            account_count,
        }
    }
}

/// A frame that says the stats could not be read this time; the stream goes on.
#[derive(Debug, Serialize)]
struct Trouble {
    detail: String,
}

impl Feed {
    /// The next frame, or `None` once the server is shutting down.
    async fn next(&mut self) -> Option<Event> {
        // Every frame waits for its tick (the first completes at once), so that a store that
        // cannot answer is asked again at the same bounded rate, not in a tight loop.
        tokio::select! {
            biased;
            () = self.closing.closed() => return None,
            _ = self.keep_alive.tick() => return Some(Event::default().comment("keep-alive")),
            _ = self.ticks.tick() => {}
        }
        let (stats, bank) = match self.read().await {
            Ok(read) => read,
            Err(detail) => return Some(json_event("trouble", &Trouble { detail })),
        };
        let bank = bank.as_ref();
        let requests_per_second = self.rate.observe(Instant::now(), decided(&stats));
        if !self.greeted {
            self.greeted = true;
            let hello = Hello {
                mode: &stats.mode,
                work: &stats.work,
                lesson: lesson(&stats.mode),
                tick_ms: TICK.as_millis(),
                frame: Frame {
                    stats: &stats,
                    requests_per_second,
                    bank,
                },
            };
            return Some(json_event("hello", &hello).retry(RECONNECT));
        }
        Some(json_event(
            "stats",
            &Frame {
                stats: &stats,
                requests_per_second,
                bank,
            },
        ))
    }

    /// The account's stats, and the bank's when there is one; or what went wrong, for a `trouble`.
    async fn read(&self) -> Result<(Stats, Option<LiveBank>), String> {
        let stats = self
            .account
            .stats()
            .await
            .map_err(|error| format!("the account's stats could not be read: {error}"))?;
        let Some(bank) = &self.bank else {
            return Ok((stats, None));
        };
        let bank = bank
            .stats()
            .await
            .map_err(|error| format!("the bank's books could not be read: {error}"))?;
        Ok((stats, Some(LiveBank::new(bank))))
    }
}

/// Requests the account has decided: acknowledged deposits and withdrawals, and refusals.
fn decided(stats: &Stats) -> u64 {
    stats
        .deposit_count
        .saturating_add(stats.withdrawal_count)
        .saturating_add(stats.refused_count)
}

fn json_event(name: &str, data: &impl Serialize) -> Event {
    // These structs hold only strings, numbers and lists of them: serializing them cannot fail.
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    Event::default().event(name).data(data)
}

/// req/s from the decided-request count sampled over time.
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Adds a sample and returns the rate over the samples of about the last [`RATE_WINDOW`].
    fn observe(&mut self, now: Instant, count: u64) -> f64 {
        if self.samples.back().is_some_and(|&(_, last)| count < last) {
            // The counts went down: a reset. Rates across it would be nonsense.
            self.samples.clear();
        }
        self.samples.push_back((now, count));
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(time, _)| now.duration_since(time) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (first_time, first_count) = self.samples[0];
        let elapsed = now.duration_since(first_time).as_secs_f64();
        if elapsed <= 0.0 {
            return 0.0;
        }
        (count - first_count) as f64 / elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn the_rate_is_the_count_delta_over_the_last_second() {
        let start = Instant::now();
        let mut rate = Rate::default();
        assert_eq!(rate.observe(start, 0), 0.0);
        assert_eq!(rate.observe(at(start, 250), 50), 200.0);
        assert_eq!(rate.observe(at(start, 500), 100), 200.0);
        assert_eq!(rate.observe(at(start, 1000), 100), 100.0);
        // The base is the newest sample at least a second old: 250 ms (50) for 1250 ms (100).
        assert_eq!(rate.observe(at(start, 1250), 100), 50.0);
        assert_eq!(rate.observe(at(start, 1500), 100), 0.0);
        assert_eq!(rate.observe(at(start, 2500), 100), 0.0);
    }

    #[test]
    fn a_reset_restarts_the_rate_instead_of_going_negative() {
        let start = Instant::now();
        let mut rate = Rate::default();
        rate.observe(start, 0);
        rate.observe(at(start, 250), 1000);
        assert_eq!(rate.observe(at(start, 500), 0), 0.0);
        assert_eq!(rate.observe(at(start, 750), 25), 100.0);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for attribute in ["src=\"", "href=\""] {
            for (at, _) in PAGE.match_indices(attribute) {
                let target = &PAGE[at + attribute.len()..];
                assert!(
                    target.starts_with("/live/")
                        || target.starts_with('#')
                        || target.starts_with("data:"),
                    "the page links outside the server: {}",
                    &target[..target.find('"').unwrap_or(target.len())]
                );
            }
        }
        assert!(!CSS.contains("url(") && !CSS.contains("@import"));
        assert!(PAGE.contains("/live/page.css") && PAGE.contains("/live/page.js"));
        assert!(JS.contains("/live/events"));
    }
}
