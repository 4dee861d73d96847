//! The command line: `run` (the default), `burst`, `demo`, `sweep` and `report`, with every flag checked before
//! anything is sent, turned into the plain descriptions the library runs ([`Load`], [`Burst`]).
//!
//! Bad values are refused by clap's value parsers, so a typo never turns into a half-run; the binary
//! prints the first line of clap's message and exits 2. `--config FILE` is read before clap sees
//! the arguments ([`crate::cli::config_file`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use racebank::parse_duration;
use racebank::StoreKind;
use racebank::{Mode, StoreConfig, WorkSpec};
use reqwest::Url;

use crate::commands::burst::Burst;
use crate::commands::demo::Demo;
use crate::commands::demo_bank::bank_modes;
use crate::commands::servers::{demo_account, ServerSpec};
use crate::commands::sweep::{Sends, Servers, Sweep, DEFAULT_POINT_DURATION};
use crate::commands::sweep_bank::check_modes;
use crate::commands::timeline::DEFAULT_LIMIT as TIMELINE_LIMIT;
use crate::plan::api::{ApiSpec, Header, RouteTemplate, DEFAULT_BODY};
use crate::plan::bank::{
    BankLoad, BankPlan, BankScenario, DEFAULT_ACCOUNTS, DEFAULT_MAX_TRANSFER, DEFAULT_READS,
    DEFAULT_TOTAL,
};
use crate::plan::bank_rounds::{Attack, RoundsLoad};
use crate::plan::load::{Limit, Load, DEFAULT_SEED};
use crate::plan::ops::AmountSpec;

/// The number of requests when neither `-n` nor `-z` is given.
pub(crate) const DEFAULT_REQUESTS: u64 = 2000;

/// The command line of the `racebank-load` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "racebank-load",
    version,
    about = "Load generator that proves, from the responses alone, whether a bank account lost updates",
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, `run` is assumed: racebank-load -n 5000 -c 64 --url http://127.0.0.1:3000\n\
                  Exit status: 0 consistent, 1 updates lost, 2 usage or unreachable, 3 inconclusive (another client, or no evidence), 4 too many errors, 5 the server stopped answering, 6 inconsistent answers, 7 protocol error, 130 interrupted."
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
    /// Release N requests at the same instant, round after round, and judge each round.
    Burst(BurstOpts),
    /// Jepsen's bank test: transfers between a bank's accounts mixed with reads of every
    /// balance; every read must sum to the total, every account end where the transfers put it.
    Bank(Box<BankOpts>),
    /// Start the server in-process once per mode, load each the same way, and compare them.
    Demo(DemoOpts),
    /// Run the same deposits (or Jepsen's bank) at many concurrencies, modes and work windows;
    /// write CSV, JSON and charts.
    Sweep(SweepOpts),
    /// Draw a `--history` file as a timeline on one self-contained HTML page.
    Report(ReportOpts),
}

/// Where the account is and what its API looks like (racebank's by default).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Base URL of the account server (http only). Repeat for replicas: requests go round robin,
    /// the balance and /stats are read from the first.
    #[arg(long, default_value = "http://127.0.0.1:3000", value_parser = parse_url)]
    pub url: Vec<Url>,

    /// A header sent with every request, e.g. -H 'Authorization: Bearer TOKEN' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<Header>,

    /// The deposit route: `METHOD /path`, the path may name {account}.
    #[arg(long, default_value = "POST /deposit", value_name = "METHOD /PATH")]
    pub deposit: RouteTemplate,

    /// The withdrawal route.
    #[arg(long, default_value = "POST /withdraw", value_name = "METHOD /PATH")]
    pub withdraw: RouteTemplate,

    /// The balance route.
    #[arg(long, default_value = "GET /balance", value_name = "METHOD /PATH")]
    pub balance: RouteTemplate,

    /// The body of a deposit or withdrawal, with {amount} (and optionally {account}) in it.
    #[arg(long, default_value = DEFAULT_BODY)]
    pub body: String,

    /// The account id that fills {account} in routes and the body.
    #[arg(long)]
    pub account: Option<String>,

    /// Where the balance is in an answer, as an RFC 6901 JSON pointer (e.g. /data/balance).
    #[arg(long, default_value = "/balance", value_name = "POINTER")]
    pub balance_pointer: String,

    /// Per-request timeout; a request that times out may or may not have been applied.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Read these settings from a TOML file first; flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Follow redirects to the same origin (scheme, host, port): 307 and 308 for writes, any for
    /// reads. Without it no redirect is followed; one to another origin never is, so the -H
    /// headers never leave for it.
    #[arg(long)]
    pub follow_redirects: bool,
}

impl TargetArgs {
    fn api(&self) -> anyhow::Result<crate::plan::api::Api> {
        ApiSpec {
            deposit: self.deposit.clone(),
            withdraw: self.withdraw.clone(),
            balance: self.balance.clone(),
            body: self.body.clone(),
            account: self.account.clone(),
            headers: self.headers.clone(),
            pointer: self.balance_pointer.clone(),
        }
        .build()
        .map(|api| crate::plan::api::Api {
            follow_redirects: self.follow_redirects,
            ..api
        })
    }
}

/// How much load to send, where, and how to report it.
#[derive(Debug, Clone, Parser)]
#[command(name = "racebank-load")]
pub struct Opts {
    /// Where, and the API's shape.
    #[command(flatten)]
    pub target: TargetArgs,

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

    /// Fail the run (exit 4) when more than this share of the requests failed (0 to 1).
    #[arg(long, value_parser = parse_ratio)]
    pub max_error_rate: Option<f64>,

    /// Write one JSON line per request to this file (docs/load-generator.md lists the fields).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Send an operation again, up to N times, after a transport failure, a timeout or an answer
    /// saying its outcome is unknown; each retry goes to the next replica. With an idempotency key
    /// (`Idempotency-Key: rb-<run>-<index>`, the same on every attempt) unless
    /// --no-idempotency-key.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retry: u32,

    /// Retry without idempotency keys: a retry of a request that was applied but not answered
    /// pays twice, and the verdict says so (money appeared).
    #[arg(long, requires = "retry")]
    pub no_idempotency_key: bool,

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

    /// The run these flags describe; fails on an API template that cannot work.
    pub fn to_load(&self) -> anyhow::Result<Load> {
        Ok(Load {
            targets: self.target.url.clone(),
            api: self.target.api()?,
            concurrency: self.concurrency,
            limit: self.limit(),
            withdraw_ratio: self.withdraw_ratio,
            amount: self.amount,
            seed: self.seed,
            timeout: self.target.timeout,
            threads: self.threads.map(count),
            progress: !self.no_progress,
            history: self.history.clone(),
            max_error_rate: self.max_error_rate,
            retries: self.retry,
            idempotency_keys: !self.no_idempotency_key,
        })
    }
}

/// The flags of `bank`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The server must hold accounts 0..N-1: racebank --accounts 8 (the bank is reset before the run).\n\
                  Exit status: 0 consistent, 1 money created or destroyed, transfers lost or a negative balance, 2 usage or unreachable, 3 inconclusive (another client, or no evidence), 4 too many errors, 5 the server stopped answering, 6 read skew (reads with the wrong total, money right), 7 protocol error, 8 deadlocks (money right), 130 interrupted."
)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "four independent command-line switches, not a state in disguise"
)]
pub struct BankOpts {
    /// Base URL of the bank server (http only); several for replicas sharing one bank: requests
    /// go round robin, the reset, the reads around the run and /stats to the first [default:
    /// http://127.0.0.1:3000].
    #[arg(value_name = "URL", value_parser = parse_url, conflicts_with = "url")]
    pub target: Vec<Url>,

    /// The same as URL, repeatable as `run`'s (and a config file's `url`).
    #[arg(long, value_parser = parse_url)]
    pub url: Vec<Url>,

    /// A header sent with every request, e.g. -H 'Authorization: Bearer TOKEN' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<Header>,

    /// What to send: `transfers` (Jepsen's mix), `deadlock` (transfers of 1 between accounts 0
    /// and 1 in alternating directions, half the total in each), `write-skew` (rounds of two
    /// withdrawals from a --household pair) or `double-spend` (rounds of withdrawals of 9 from
    /// --account holding 10).
    #[arg(long, value_enum, default_value_t = BankScenario::Transfers)]
    pub scenario: BankScenario,

    /// Accounts to move money between: `0` to `N-1`.
    #[arg(long, default_value_t = DEFAULT_ACCOUNTS as u64,
          value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub accounts: u64,

    /// The money in the bank, opened in account 0.
    #[arg(long, default_value_t = DEFAULT_TOTAL,
          value_parser = clap::value_parser!(i64).range(0..=1_000_000_000_000))]
    pub total: i64,

    /// The largest transfer: each moves 1 to this much.
    #[arg(long, default_value_t = DEFAULT_MAX_TRANSFER,
          value_parser = clap::value_parser!(i64).range(1..=1_000_000_000_000))]
    pub max_transfer: i64,

    /// Share of the requests that read every balance, from 0 to 1.
    #[arg(long, default_value_t = DEFAULT_READS, value_parser = parse_ratio)]
    pub reads: f64,

    /// The bank lets balances go below zero (households): a negative balance is no anomaly.
    #[arg(long)]
    pub allow_negative: bool,

    /// Open the bank at the server's own opening balances (a reset without a body: every account
    /// at `racebank --initial-balance`) instead of the whole --total in account 0.
    #[arg(long, conflicts_with = "total")]
    pub server_openings: bool,

    /// write-skew: the household pair, opened with half of --total each.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        default_value = "alice,bob"
    )]
    pub household: Vec<String>,

    /// double-spend: the account funded with 10 and withdrawn from.
    #[arg(long, default_value = "0")]
    pub account: String,

    /// write-skew, double-spend: rounds, each opened by a reset [default: 20, 32].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rounds: Option<u64>,

    /// double-spend: withdrawals of 9 per round, one more each round (Jepsen's 1..16).
    #[arg(long, default_value = "1..16")]
    pub withdrawals: AmountSpec,

    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,

    /// Number of requests [default: 2000 unless -z is given].
    #[arg(short = 'n', long, conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub requests: Option<u64>,

    /// Send requests for this long instead of a count (e.g. `10s`).
    #[arg(short = 'z', long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Seed of the operation sequence: the same seed sends the same requests.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Per-request timeout; a transfer that times out may or may not have been applied.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Fail the run (exit 4) when more than this share of the requests failed (0 to 1).
    #[arg(long, value_parser = parse_ratio)]
    pub max_error_rate: Option<f64>,

    /// Write one JSON line per request to this file.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Read these settings from a TOML file first; flags given here override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print one JSON document instead of the text summary.
    #[arg(long)]
    pub json: bool,

    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Worker threads [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,

    /// Routes, bodies and pointers of another bank API.
    #[command(flatten)]
    pub api: crate::cli::bank_api::BankApiArgs,
}

impl BankOpts {
    /// The bank run these flags describe; an API that cannot work is refused before anything is
    /// sent.
    pub fn to_bank(&self) -> anyhow::Result<BankLoad> {
        let mut load = BankLoad::new(Url::parse("http://127.0.0.1:3000").expect("a valid URL"));
        for urls in [&self.target, &self.url] {
            if !urls.is_empty() {
                load.targets.clone_from(urls);
            }
        }
        load.headers.clone_from(&self.headers);
        load.plan = BankPlan {
            seed: self.seed,
            accounts: count(self.accounts),
            max_transfer: self.max_transfer,
            reads: self.reads,
            scenario: self.scenario,
        };
        load.total = self.total;
        load.allow_negative = self.allow_negative;
        load.server_openings = self.server_openings;
        load.concurrency = self.concurrency;
        load.limit = match (self.requests, self.duration) {
            (_, Some(duration)) => Limit::Duration(duration),
            (Some(count), None) => Limit::Count(count),
            (None, None) => Limit::Count(DEFAULT_REQUESTS),
        };
        load.timeout = self.timeout;
        load.threads = self.threads.map(count);
        load.progress = !self.no_progress;
        load.history.clone_from(&self.history);
        load.max_error_rate = self.max_error_rate;
        load.api = self.api.spec().build()?;
        Ok(load)
    }
}

impl BankOpts {
    /// The rounds run `--scenario write-skew|double-spend` describes.
    pub fn to_rounds(&self) -> anyhow::Result<RoundsLoad> {
        let bank = self.to_bank()?;
        let url = bank.targets[0].clone();
        let mut load = match self.household.as_slice() {
            _ if self.scenario == BankScenario::DoubleSpend => {
                RoundsLoad::double_spend(url, self.account.clone())
            }
            [a, b] if a != b => RoundsLoad::write_skew(url, [a.clone(), b.clone()], self.total),
            _ => anyhow::bail!("--household names two distinct accounts: --household alice,bob"),
        };
        (load.targets, load.api) = (bank.targets, bank.api);
        if let Attack::DoubleSpend { min, max, .. } = &mut load.attack {
            (*min, *max) = (
                self.withdrawals.min.unsigned_abs(),
                self.withdrawals.max.unsigned_abs(),
            );
            anyhow::ensure!(
                (1..=1000).contains(max),
                "--withdrawals is 1 to 1000 per round"
            );
        }
        load.headers.clone_from(&self.headers);
        load.timeout = self.timeout;
        load.rounds = self.rounds.unwrap_or(load.rounds);
        Ok(load)
    }
}

/// The flags of `burst`.
#[derive(Debug, Clone, Args)]
pub struct BurstOpts {
    /// Where, and the API's shape.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Requests released together in each round (one connection each).
    #[arg(short = 'n', long, default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub requests: u64,

    /// Rounds, each judged on its own.
    #[arg(long, default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rounds: u64,

    /// Share of the requests that are withdrawals, from 0 (deposits only) to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub withdraw_ratio: f64,

    /// Amount of each operation in minor units: `5`, or a range `1..100`.
    #[arg(long, default_value = "5")]
    pub amount: AmountSpec,

    /// Seed of the operation sequence.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Print one JSON document instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

impl BurstOpts {
    /// The bursts these flags describe.
    pub fn to_burst(&self) -> anyhow::Result<Burst> {
        let mut load = Load::new(self.target.url[0].clone());
        load.targets.clone_from(&self.target.url);
        load.api = self.target.api()?;
        load.withdraw_ratio = self.withdraw_ratio;
        load.amount = self.amount;
        load.seed = self.seed;
        load.timeout = self.target.timeout;
        load.concurrency = self.requests;
        load.limit = Limit::Count(self.requests * self.rounds);
        Ok(Burst {
            load,
            size: count(self.requests),
            rounds: self.rounds,
        })
    }
}

/// The flags of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoOpts {
    /// What to show: `races` (concurrent deposits and withdrawals, every mode), `retries`
    /// (lost acknowledgements: no retry, retry without keys, retry with keys) or `bank`
    /// (Jepsen's transfers and write skew, every mode the bank runs).
    #[arg(long, value_enum, default_value_t = DemoScenario::Races)]
    pub scenario: DemoScenario,

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

    /// Modes to compare, comma separated [default: every mode the store runs; in memory
    /// unguarded,mutex,semaphore:4,optimistic,atomic].
    #[arg(long, value_delimiter = ',')]
    pub modes: Option<Vec<Mode>>,

    #[command(flatten)]
    pub store: StoreArgs,

    /// With a shared store, every mode runs on one replica and on this many (in-process servers
    /// sharing one account); `--scenario bank` on this many only, and in memory on one
    /// [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub replicas: Option<u64>,

    /// The Redis lease (`lease`, `fenced`, `fenced-write-only`); those modes also run once with a
    /// 2ms lease and 10ms of work, where the work outlasts the lease.
    #[arg(long, default_value = "100ms", value_parser = parse_positive_duration)]
    pub lease: Duration,

    /// Print the rows as a JSON array instead of tables.
    #[arg(long)]
    pub json: bool,
}

impl DemoOpts {
    /// The demo these flags describe.
    pub fn to_demo(&self) -> Demo {
        Demo {
            requests: self.requests,
            concurrency: self.concurrency,
            work: self.work,
            modes: self.modes.clone(),
            store_kind: self.store.kind,
            store: self.store.config(),
            replicas: self.replicas,
            lease: self.lease,
        }
    }
}

/// Where the in-process servers of `demo` and `sweep` keep the account.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where the account lives: memory (this process), or postgres or redis shared by replicas.
    #[arg(long = "store", value_enum, default_value_t = StoreKind::Memory)]
    pub kind: StoreKind,

    /// PostgreSQL for `--store postgres`.
    #[arg(long, env = "DATABASE_URL", default_value = racebank::DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// PostgreSQL connections per replica (a guard too: a pool smaller than the load narrows the race).
    #[arg(long, default_value_t = racebank::DEFAULT_POOL_SIZE as u64,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pool_size: u64,

    /// Redis for `--store redis`.
    #[arg(long, env = "REDIS_URL", default_value = racebank::DEFAULT_REDIS_URL)]
    pub redis_url: String,
}

impl StoreArgs {
    /// The store these flags name.
    pub fn config(&self) -> StoreConfig {
        match self.kind {
            StoreKind::Memory => StoreConfig::Memory,
            StoreKind::Postgres => StoreConfig::Postgres {
                url: self.database_url.clone(),
                pool_size: count(self.pool_size),
            },
            StoreKind::Redis => StoreConfig::Redis {
                url: self.redis_url.clone(),
            },
        }
    }
}

/// The demo's scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoScenario {
    /// Concurrent deposits and withdrawals against every mode.
    Races,
    /// Lost acknowledgements (`--chaos drop-after-apply`) and three ways of retrying.
    Retries,
    /// The bank: Jepsen's transfers and the write-skew rounds against every mode of the store.
    Bank,
}

/// What a sweep's points send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepScenario {
    /// Deposits of one amount, as `run` sends them.
    Deposits,
    /// Jepsen's bank, as `bank` sends it: transfers between accounts and reads of every balance.
    Bank,
}

/// The flags of `sweep`.
#[derive(Debug, Clone, Args)]
pub struct SweepOpts {
    /// What every point sends: `deposits` (a `run` of deposits of --amount) or `bank` (a `bank`
    /// run: Jepsen's transfers and reads, against a server opened with a bank).
    #[arg(long, value_enum, default_value_t = SweepScenario::Deposits)]
    pub scenario: SweepScenario,

    /// Modes to compare, comma separated: one in-process server per point [default:
    /// unguarded,mutex,atomic; with --scenario bank, every mode the store's bank runs].
    #[arg(long, value_delimiter = ',', conflicts_with = "url")]
    pub modes: Option<Vec<Mode>>,

    /// Concurrencies, comma separated: one point each.
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: Vec<u64>,

    /// The servers' work between reading and writing the balance, comma separated
    /// (`none,yield,100us,1ms`): one point each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1ms",
        conflicts_with = "url"
    )]
    pub work: Vec<WorkSpec>,

    /// Requests per point (deposits, or transfers and reads) [default: none: each point sends
    /// for 500ms (-z) unless -n is given].
    #[arg(short = 'n', long, conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: Option<u64>,

    /// Send for this long at each point instead of a count.
    #[arg(short = 'z', long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Deposits: the amount of every deposit, in minor units [default: 5].
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1_000_000_000))]
    pub amount: Option<i64>,

    /// Bank: accounts to move money between, `0` to `N-1` [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub accounts: Option<u64>,

    /// Bank: the money in the bank, opened in account 0 [default: 100].
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=1_000_000_000_000))]
    pub total: Option<i64>,

    /// Bank: the largest transfer; each moves 1 to this much [default: 5].
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1_000_000_000_000))]
    pub max_transfer: Option<i64>,

    /// Bank: the share of requests that read every balance, from 0 to 1 [default: 0.5].
    #[arg(long, value_parser = parse_ratio)]
    pub reads: Option<f64>,

    /// Seed of the operation sequence.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    #[command(flatten)]
    pub store: StoreArgs,

    /// With a shared store, the servers (in-process, sharing one account) of every point.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16),
          conflicts_with = "url")]
    pub replicas: u64,

    /// Sweep a server already running here instead (racebank's API; repeat for replicas). It is
    /// sent `POST /reset` before each point when it has that route (the bank: `POST /bank/reset`).
    #[arg(long, value_parser = parse_url)]
    pub url: Vec<Url>,

    /// The name of a running server's line in the charts.
    #[arg(long, default_value = "server", requires = "url")]
    pub label: String,

    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Worker threads of the load [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,

    /// The directory the files are written to.
    #[arg(short = 'o', long, default_value = ".")]
    pub out: PathBuf,

    /// The files' name: NAME.csv, NAME.json and a chart per figure, NAME-FIGURE.svg/.png
    /// (deposits: lost, rps; bank: money, transfers) [default: sweep, or sweep-bank].
    #[arg(long)]
    pub name: Option<String>,

    /// Print the points as a JSON array instead of one line each.
    #[arg(long)]
    pub json: bool,
}

impl SweepOpts {
    /// The sweep these flags describe; fails when `--url` comes with a store of our own, or a
    /// flag of one scenario comes with the other.
    pub fn to_sweep(&self) -> anyhow::Result<Sweep> {
        let sends = self.sends()?;
        let bank = matches!(sends, Sends::Bank { .. });
        let servers = if self.url.is_empty() {
            let store = self.store.config();
            let shared = !matches!(store, StoreConfig::Memory);
            anyhow::ensure!(
                shared || self.replicas == 1,
                "--replicas needs a shared store: --store postgres or --store redis"
            );
            let modes = match (&self.modes, bank) {
                (Some(modes), _) => modes.clone(),
                (None, false) => vec![Mode::Unguarded, Mode::Mutex, Mode::Atomic],
                (None, true) => bank_modes(self.store.kind),
            };
            if bank {
                check_modes(&modes, self.store.kind)?;
            }
            Servers::InProcess {
                // Its mode and work are replaced at each point by the modes and works below.
                base: ServerSpec {
                    store,
                    account: demo_account()?,
                    replicas: count(self.replicas),
                    ..ServerSpec::memory(Mode::Unguarded, WorkSpec::None, 0)
                },
                modes,
                works: self.work.clone(),
            }
        } else {
            anyhow::ensure!(
                self.store.kind == StoreKind::Memory,
                "--store starts servers of the sweep's own; with --url the sweep loads the servers \
                 named there"
            );
            Servers::Running {
                urls: self.url.clone(),
                label: self.label.clone(),
            }
        };
        Ok(Sweep {
            servers,
            concurrency: self.concurrency.clone(),
            limit: match (self.requests, self.duration) {
                (_, Some(duration)) => Limit::Duration(duration),
                (Some(count), None) => Limit::Count(count),
                (None, None) => Limit::Duration(DEFAULT_POINT_DURATION),
            },
            sends,
            seed: self.seed,
            timeout: self.timeout,
            threads: self.threads.map(count),
        })
    }

    /// What each point sends; a flag of the other scenario is refused, naming it.
    fn sends(&self) -> anyhow::Result<Sends> {
        let bank_flags = [
            ("--accounts", self.accounts.is_some()),
            ("--total", self.total.is_some()),
            ("--max-transfer", self.max_transfer.is_some()),
            ("--reads", self.reads.is_some()),
        ];
        match self.scenario {
            SweepScenario::Deposits => {
                if let Some((flag, _)) = bank_flags.iter().find(|(_, given)| *given) {
                    anyhow::bail!(
                        "{flag} is for --scenario bank: a sweep of deposits sends deposits of --amount"
                    );
                }
                Ok(Sends::Deposits {
                    amount: self.amount.unwrap_or(DEFAULT_SWEEP_AMOUNT),
                })
            }
            SweepScenario::Bank => {
                anyhow::ensure!(
                    self.amount.is_none(),
                    "--amount is for deposits: --scenario bank sends transfers of 1..=--max-transfer"
                );
                Ok(Sends::Bank {
                    accounts: self.accounts.map_or(DEFAULT_ACCOUNTS, count),
                    total: self.total.unwrap_or(DEFAULT_TOTAL),
                    max_transfer: self.max_transfer.unwrap_or(DEFAULT_MAX_TRANSFER),
                    reads: self.reads.unwrap_or(DEFAULT_READS),
                })
            }
        }
    }

    /// The files' name: `--name`, or the scenario's default.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            match self.scenario {
                SweepScenario::Deposits => "sweep",
                SweepScenario::Bank => "sweep-bank",
            }
            .to_string()
        })
    }
}

/// The amount of a sweep's deposits when `--amount` is not given.
const DEFAULT_SWEEP_AMOUNT: i64 = 5;

/// The flags of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportOpts {
    /// The `--history` file of a run.
    pub history: PathBuf,

    /// Where to write the page.
    #[arg(short = 'o', long, default_value = "timeline.html")]
    pub output: PathBuf,

    /// Draw at most this many requests (the earliest sent).
    #[arg(long, default_value_t = TIMELINE_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=200_000))]
    pub limit: usize,

    /// A `bank` history: the total every read must sum to (the chart's flat line; `-o` .png,
    /// .svg or .html).
    #[arg(long, default_value_t = DEFAULT_TOTAL)]
    pub total: i64,
}

/// A count from a flag as a `usize`: clap's ranges keep every such flag far below `usize::MAX`,
/// and a count that did not fit would mean as many as the machine can hold.
fn count(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
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
        assert_eq!(opts.target.url.len(), 1);
        assert_eq!(opts.target.url[0].as_str(), "http://127.0.0.1:3000/");
        let load = opts.to_load().unwrap();
        assert!(load.api.is_racebank());
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
        assert_eq!(opts.to_load().unwrap().thread_count(), 2);
    }

    #[test]
    fn another_api_is_described_with_routes_a_body_headers_and_a_pointer() {
        let opts = Opts::try_parse_from([
            "racebank-load",
            "--url",
            "http://127.0.0.1:8080",
            "--url",
            "http://127.0.0.1:8081",
            "-H",
            "Authorization: Bearer t",
            "--deposit",
            "POST /api/v1/accounts/{account}/deposits",
            "--body",
            r#"{"amount_cents": {amount}}"#,
            "--account",
            "42",
            "--balance-pointer",
            "/data/balance",
        ])
        .unwrap();
        let load = opts.to_load().unwrap();
        assert_eq!(load.targets.len(), 2);
        assert_eq!(load.api.deposit.path, "/api/v1/accounts/42/deposits");
        assert_eq!(load.api.body.render(3), &br#"{"amount_cents": 3}"#[..]);
        assert!(!load.api.is_racebank());
    }
}
