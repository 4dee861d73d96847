//! The command line: `run` (the default) and `demo`, with every flag checked before anything is sent.
//!
//! Bad values are refused by clap's value parsers, so a typo never turns into a half-run; the binary
//! prints the first line of clap's message and exits 2.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use racebank::duration::parse_duration;
use racebank::{Mode, WorkSpec};

/// The seed used when `--seed` is not given: fixed, so two runs send the same operations.
pub const DEFAULT_SEED: u64 = 1;

/// The number of requests when neither `-n` nor `-z` is given.
pub const DEFAULT_REQUESTS: u64 = 2000;

/// The command line of the `racebank-load` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "racebank-load",
    version,
    about = "Load generator that proves, from the responses alone, whether a bank account lost updates",
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, `run` is assumed: racebank-load -n 5000 -c 64 --url http://127.0.0.1:3000"
)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The flags of `run`, accepted without the word `run`.
    #[command(flatten)]
    pub run: Opts,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Send deposits and withdrawals to a server and check that no update was lost (the default).
    Run(Opts),
    /// Start the server in-process once per mode, load each the same way, and compare them.
    Demo(DemoOpts),
}

/// How much load to send, where, and how to report it.
#[derive(Debug, Clone, Parser)]
#[command(name = "racebank-load")]
pub struct Opts {
    /// Base URL of the account server (http only).
    #[arg(long, default_value = "http://127.0.0.1:3000", value_parser = parse_url)]
    pub url: reqwest::Url,

    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,

    /// Number of requests to send [default: 2000 unless -z is given].
    #[arg(short = 'n', long, conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub requests: Option<u64>,

    /// Send requests for this long instead of a count (e.g. `10s`); requests in flight at the end
    /// are finished.
    #[arg(short = 'z', long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Share of the requests that are withdrawals, from 0 (deposits only) to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub withdraw_ratio: f64,

    /// Amount of each operation in minor units: `5`, or a range `1..100` picked per request.
    #[arg(long, default_value = "5")]
    pub amount: AmountSpec,

    /// Seed of the operation sequence: the same seed sends the same operations in the same order.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Per-request timeout; a request that times out may or may not have been applied.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Print one JSON document instead of the text summary.
    #[arg(long)]
    pub json: bool,

    /// Do not draw a progress bar (none is drawn when stderr is not a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,

    /// Worker threads, each with its own runtime and connections [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
}

impl Opts {
    /// How long or how many: the `-n`/`-z` choice with the default applied.
    pub fn limit(&self) -> Limit {
        match (self.requests, self.duration) {
            (_, Some(duration)) => Limit::Duration(duration),
            (Some(count), None) => Limit::Count(count),
            (None, None) => Limit::Count(DEFAULT_REQUESTS),
        }
    }

    /// Worker threads to start: `--threads` or the core count, never more than the concurrency.
    pub fn thread_count(&self) -> usize {
        let wanted = self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |threads| threads as usize,
        );
        wanted.clamp(1, self.concurrency as usize)
    }
}

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this many requests.
    Count(u64),
    /// After this long.
    Duration(Duration),
}

/// The flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoOpts {
    /// Requests per mode and scenario [default: 500 deposits, 200 withdrawals].
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub requests: Option<u64>,

    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,

    /// The server's work between reading and writing the balance (`none`, `yield`, `1ms`, ...).
    #[arg(long, default_value = "1ms")]
    pub work: WorkSpec,

    /// Modes to compare, comma separated [default: unguarded,mutex,semaphore:4,optimistic,atomic].
    #[arg(long, value_delimiter = ',')]
    pub modes: Option<Vec<Mode>>,

    /// Print the rows as a JSON array instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The `--amount` flag: one amount, or a range picked from per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountSpec {
    /// The smallest amount.
    pub min: i64,
    /// The largest amount (equal to `min` for a fixed amount).
    pub max: i64,
}

/// The largest amount accepted, so that sums of a billion requests still fit comfortably.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

impl AmountSpec {
    /// The amount when it is fixed.
    pub fn fixed(self) -> Option<i64> {
        (self.min == self.max).then_some(self.min)
    }
}

impl FromStr for AmountSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let one = |part: &str| -> Result<i64, String> {
            match part.trim().parse::<i64>() {
                Ok(value) if (1..=MAX_AMOUNT).contains(&value) => Ok(value),
                _ => Err(format!(
                    "`{}` is not an amount: use a whole number of minor units from 1 to {MAX_AMOUNT}",
                    part.trim()
                )),
            }
        };
        let (min, max) = match text.split_once("..") {
            Some((min, max)) => (one(min)?, one(max.strip_prefix('=').unwrap_or(max))?),
            None => {
                let value = one(text)?;
                (value, value)
            }
        };
        if min > max {
            return Err(format!("`{text}`: the range must run from small to large"));
        }
        Ok(AmountSpec { min, max })
    }
}

impl fmt::Display for AmountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fixed() {
            Some(amount) => write!(f, "{amount}"),
            None => write!(f, "{}..{}", self.min, self.max),
        }
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("`{text}`: only http:// URLs are supported"));
    }
    if url.host_str().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url)
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!(
            "`{text}` is not a share: use a number from 0 to 1 (e.g. 0.3)"
        )),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_two_thousand_deposits_of_five_at_concurrency_64() {
        let opts = Opts::try_parse_from(["racebank-load"]).unwrap();
        assert_eq!(opts.limit(), Limit::Count(2000));
        assert_eq!(opts.concurrency, 64);
        assert_eq!(opts.amount, AmountSpec { min: 5, max: 5 });
        assert_eq!(opts.withdraw_ratio, 0.0);
        assert_eq!(opts.seed, DEFAULT_SEED);
        assert_eq!(opts.url.as_str(), "http://127.0.0.1:3000/");
    }

    #[test]
    fn run_is_the_default_subcommand() {
        let cli = Cli::try_parse_from(["racebank-load", "-n", "10"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.limit(), Limit::Count(10));
        let cli = Cli::try_parse_from(["racebank-load", "run", "-z", "2s"]).unwrap();
        let Some(Command::Run(opts)) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(opts.limit(), Limit::Duration(Duration::from_secs(2)));
        let cli =
            Cli::try_parse_from(["racebank-load", "demo", "--modes", "mutex,atomic"]).unwrap();
        let Some(Command::Demo(demo)) = cli.command else {
            panic!("expected demo");
        };
        assert_eq!(demo.modes, Some(vec![Mode::Mutex, Mode::Atomic]));
    }

    #[test]
    fn amounts_are_one_number_or_a_range() {
        assert_eq!("7".parse(), Ok(AmountSpec { min: 7, max: 7 }));
        assert_eq!("1..100".parse(), Ok(AmountSpec { min: 1, max: 100 }));
        assert_eq!("1..=100".parse(), Ok(AmountSpec { min: 1, max: 100 }));
        for bad in [
            "0",
            "-5",
            "5..1",
            "a",
            "1..",
            "..5",
            "1.5",
            "99999999999999999999",
        ] {
            assert!(
                bad.parse::<AmountSpec>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn bad_flags_are_refused() {
        for args in [
            &["racebank-load", "--withdraw-ratio", "2"][..],
            &["racebank-load", "--withdraw-ratio", "-0.1"],
            &["racebank-load", "-c", "0"],
            &["racebank-load", "-n", "0"],
            &["racebank-load", "-n", "5", "-z", "1s"],
            &["racebank-load", "-z", "0"],
            &["racebank-load", "--timeout", "fast"],
            &["racebank-load", "--url", "https://127.0.0.1:1"],
            &["racebank-load", "--url", "not a url"],
            &["racebank-load", "--threads", "0"],
            &["racebank-load", "--amount", "0"],
        ] {
            assert!(
                Cli::try_parse_from(args).is_err(),
                "{args:?} should be refused"
            );
        }
    }

    #[test]
    fn threads_never_exceed_the_concurrency() {
        let opts = Opts::try_parse_from(["racebank-load", "-c", "2", "--threads", "8"]).unwrap();
        assert_eq!(opts.thread_count(), 2);
    }
}
