//! The command line of the `racebank` binary, each flag with an environment-variable fallback
//! (`RACEBANK_MODE`, `DATABASE_URL`, ...). It only builds a [`Config`]: nothing below it knows clap.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use racebank::{
    parse_duration, AccountConfig, AccountId, BankSpec, Chaos, Config, LockOrder, Mode,
    ServerConfig, StoreConfig, StoreKind, WorkSpec, DEFAULT_DATABASE_URL, DEFAULT_POOL_SIZE,
    DEFAULT_REDIS_URL,
};

/// The command line of the `racebank` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "racebank",
    version,
    about = "A bank account over HTTP that loses updates on purpose (--mode unguarded) and the strategies that stop it",
    after_help = "Try: racebank --mode unguarded --work rendezvous:2, then send two deposits at once."
)]
pub(crate) struct Cli {
    /// Address to listen on: `IP:PORT` or `HOST:PORT` (`localhost:3000`). Loopback by default:
    /// this server is for experiments, not the internet; anything else logs a WARN at start.
    #[arg(long, env = "RACEBANK_ADDR", default_value = "127.0.0.1:3000", value_parser = parse_addr)]
    pub addr: String,

    /// A host name to serve besides loopback names and the bound address (repeatable, or
    /// comma-separated in the environment); requests whose `Host` names anything else get 421,
    /// against DNS rebinding.
    #[arg(long = "allow-host", env = "RACEBANK_ALLOW_HOSTS", value_delimiter = ',',
          value_parser = parse_host_name)]
    pub allow_hosts: Vec<String>,

    /// Where the balance lives: memory (this process), postgres or redis (shared by replicas).
    #[arg(long, env = "RACEBANK_STORE", value_enum, default_value_t = StoreKind::Memory)]
    pub store: StoreKind,

    /// The account to serve; replicas that name the same account in the same store share it.
    #[arg(long, env = "RACEBANK_ACCOUNT", default_value = "main")]
    pub account: AccountId,

    // The help lists the modes from the mode table, grouped by the stores that run them.
    #[arg(long, env = "RACEBANK_MODE", default_value = "unguarded", help = Mode::help())]
    pub mode: Mode,

    /// What each request does between reading and writing the balance: none, yield, a duration
    /// (2ms), a random range (0ms..5ms) or rendezvous:N. The default, 1ms, is long enough that
    /// concurrent requests always overlap.
    #[arg(long, env = "RACEBANK_WORK", default_value = "1ms")]
    pub work: WorkSpec,

    /// The balance of a new account (and of a reset without a body), in minor units (cents).
    #[arg(long, env = "RACEBANK_INITIAL_BALANCE", default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub initial_balance: i64,

    /// Open a bank beside the account: a count (`8`: accounts `0` to `7`, each opening with
    /// --initial-balance) or a list of id=balance (`alice=100,bob=50`). Up to 1000 accounts.
    #[arg(long, env = "RACEBANK_ACCOUNTS", value_parser = parse_accounts)]
    pub accounts: Option<AccountsArg>,

    /// Group bank accounts into households that share one limit: each member may go below zero
    /// while the household's total stays at or above zero (the write-skew lesson). Members joined
    /// by `+`, households by `,`: `alice+bob,carol+dave`.
    #[arg(long, env = "RACEBANK_HOUSEHOLDS", value_delimiter = ',', value_parser = parse_household)]
    pub households: Vec<Vec<AccountId>>,

    /// The order in which `account-locks` and `for-update` lock the accounts of a bank request:
    /// `request` (the debited account first: opposite transfers deadlock) or `id` (never).
    #[arg(long, env = "RACEBANK_LOCK_ORDER", value_enum, default_value_t = LockOrder::Id)]
    pub lock_order: LockOrder,

    /// How often a request that met a conflicting write redoes its section before it answers 503.
    #[arg(long, env = "RACEBANK_MAX_RETRIES", default_value_t = 1000)]
    pub max_retries: u32,

    /// PostgreSQL to connect to (`--store postgres`).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Connections to PostgreSQL at most. A pool smaller than the load is a hidden semaphore: it
    /// narrows the race (a pool of 1 hides it entirely).
    #[arg(long, env = "RACEBANK_POOL_SIZE", default_value_t = DEFAULT_POOL_SIZE,
          value_parser = parse_pool_size)]
    pub pool_size: usize,

    /// Redis to connect to (`--store redis`).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL)]
    pub redis_url: String,

    /// Refuse to start unless Redis keeps an append-only file (`appendonly yes`): otherwise a
    /// restart (no persistence) or a crash (snapshots only) loses acknowledged writes.
    #[arg(long, env = "RACEBANK_REDIS_REQUIRE_AOF")]
    pub redis_require_aof: bool,

    /// How long a Redis lease lasts (`lease`, `fenced`, `fenced-write-only`).
    #[arg(long, env = "RACEBANK_LEASE", default_value = "100ms", value_parser = parse_lease)]
    pub lease: Duration,

    /// How long the answer to a request with an `Idempotency-Key` is kept, so that a repeat
    /// replays it rather than applying again (docs/retries.md).
    #[arg(long, env = "RACEBANK_IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_ttl)]
    pub idempotency_ttl: Duration,

    /// Fault injection, for demonstrations and tests: `drop-after-apply=P` applies a share P of
    /// the deposits and withdrawals, then drops their connection without answering (the lost
    /// acknowledgement that makes clients retry). Off unless given.
    #[arg(long, env = "RACEBANK_CHAOS")]
    pub chaos: Option<Chaos>,

    /// On Ctrl-C or SIGTERM, how long requests in flight may take to finish before the server stops
    /// anyway (a request stopped this way has written nothing).
    #[arg(long, env = "RACEBANK_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How long a connection may wait to complete a request's head, from when the server starts
    /// waiting for it; so also how long an idle keep-alive connection stays open. Past it (checked
    /// once per timeout, so between one and two timeouts), the connection is closed.
    #[arg(long, env = "RACEBANK_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: Duration,

    /// How long a request's body may take to arrive after its head. Past it, 408.
    #[arg(long, env = "RACEBANK_BODY_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub body_timeout: Duration,

    /// How long a connection may stay open; past it, its next answer says `Connection: close`, or
    /// it is closed once quiet.
    #[arg(long, env = "RACEBANK_MAX_CONNECTION_AGE", default_value = "60s", value_parser = parse_timeout)]
    pub max_connection_age: Duration,

    /// Requests one connection may carry; the last one's answer says `Connection: close`.
    #[arg(long, env = "RACEBANK_MAX_REQUESTS_PER_CONNECTION", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_connection: u64,

    /// Live-page event streams open at once; they hold no connection slot. Further viewers get
    /// 503 with Retry-After.
    #[arg(long, env = "RACEBANK_MAX_VIEWERS", default_value_t = 100,
          value_parser = parse_max_connections)]
    pub max_viewers: usize,

    /// Connections served at once; further ones wait in the listen backlog until one closes.
    #[arg(long, env = "RACEBANK_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = parse_max_connections)]
    pub max_connections: usize,
}

impl Cli {
    /// The configuration these flags describe.
    pub(crate) fn config(&self) -> Result<Config, String> {
        let store = match self.store {
            StoreKind::Memory => StoreConfig::Memory,
            StoreKind::Postgres => StoreConfig::Postgres {
                url: self.database_url.clone(),
                pool_size: self.pool_size,
            },
            StoreKind::Redis => StoreConfig::Redis {
                url: self.redis_url.clone(),
            },
        };
        Ok(Config {
            account: AccountConfig {
                store,
                id: self.account.clone(),
                mode: self.mode,
                work: self.work,
                initial_balance: self.initial_balance,
                max_retries: self.max_retries,
                lease: self.lease,
                idempotency_ttl: self.idempotency_ttl,
                redis_require_aof: self.redis_require_aof,
                bank: self.bank()?,
                lock_order: self.lock_order,
            },
            server: ServerConfig {
                shutdown_grace: self.shutdown_grace,
                header_timeout: self.header_timeout,
                body_timeout: self.body_timeout,
                max_connections: self.max_connections,
                chaos: self.chaos.unwrap_or_default(),
                allowed_hosts: self.allow_hosts.clone(),
                max_connection_age: self.max_connection_age,
                max_requests_per_connection: self.max_requests_per_connection,
                max_viewers: self.max_viewers,
            },
        })
    }

    /// The bank `--accounts` and `--households` describe, if any.
    fn bank(&self) -> Result<Option<BankSpec>, String> {
        let spec = match &self.accounts {
            None if self.households.is_empty() => return Ok(None),
            None => {
                return Err(
                    "--households groups the bank's accounts: open a bank with --accounts".into(),
                )
            }
            Some(AccountsArg::Count(count)) => {
                BankSpec::numbered(*count, self.initial_balance, &self.households)
            }
            Some(AccountsArg::List(accounts)) => BankSpec::new(accounts.clone(), &self.households),
        };
        spec.map(Some)
            .map_err(|error| format!("cannot open the bank (--accounts, --households): {error}"))
    }
}

/// What `--accounts` names: how many accounts, or which, with their opening balances.
#[derive(Debug, Clone)]
pub(crate) enum AccountsArg {
    Count(usize),
    List(Vec<(AccountId, i64)>),
}

fn parse_accounts(text: &str) -> Result<AccountsArg, String> {
    if let Ok(count) = text.trim().parse::<usize>() {
        return Ok(AccountsArg::Count(count));
    }
    text.split(',')
        .map(|entry| {
            let (id, balance) = entry.split_once('=').ok_or_else(|| {
                format!("`{entry}`: name each account with its opening balance, `alice=100`, or give a count, `8`")
            })?;
            let balance = balance
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|balance| *balance >= 0)
                .ok_or_else(|| format!("`{balance}` is not an opening balance: a whole number of minor units, 0 or more"))?;
            Ok((id.trim().parse::<AccountId>()?, balance))
        })
        .collect::<Result<_, String>>()
        .map(AccountsArg::List)
}

fn parse_household(text: &str) -> Result<Vec<AccountId>, String> {
    text.split('+')
        .map(|id| id.trim().parse::<AccountId>())
        .collect()
}

/// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`: checked for shape here, resolved when bound.
fn parse_addr(text: &str) -> Result<String, String> {
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    let shape = text.rsplit_once(':').filter(|(host, port)| {
        !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok()
    });
    match shape {
        Some((host, _)) if parse_host_name(host).is_ok() => Ok(text.to_string()),
        _ => Err(format!(
            "`{text}` is not an address: use IP:PORT or HOST:PORT, e.g. 127.0.0.1:3000 or \
             localhost:3000"
        )),
    }
}

/// A host name: letters, digits, `-` and `.`, as DNS has them.
fn parse_host_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    let valid = (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{text}` is not a host name: use letters, digits, `-` and `.`"
        ))
    }
}

fn parse_pool_size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(size) if (1..=1000).contains(&size) => Ok(size),
        _ => Err(format!("`{text}` is not a pool size: use 1 to 1000")),
    }
}

fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < Duration::from_millis(1) {
        return Err(format!("`{text}`: a lease lasts at least 1ms"));
    }
    Ok(lease)
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout < Duration::from_millis(1) {
        return Err(format!("`{text}`: a timeout lasts at least 1ms"));
    }
    Ok(timeout)
}

/// A key's time to live: a duration as everywhere (`90s`, `30m`), or whole hours (`24h`), up to a
/// week.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = match text.trim().strip_suffix('h') {
        Some(hours) => match hours.parse::<u64>() {
            Ok(hours) if hours <= 7 * 24 => Duration::from_secs(hours * 3600),
            _ => return Err(format!("`{text}`: use whole hours, at most 168h (a week)")),
        },
        None => parse_duration(text)?,
    };
    if ttl < Duration::from_millis(1) {
        return Err(format!("`{text}`: a key is kept at least 1ms"));
    }
    Ok(ttl)
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(limit) if (1..=1_000_000).contains(&limit) => Ok(limit),
        _ => Err(format!(
            "`{text}` is not a connection limit: use 1 to 1000000"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_of_the_flags_match_the_default_config() {
        let cli = Cli::try_parse_from(["racebank"]).unwrap();
        let (config, default) = (cli.config().unwrap(), Config::default());
        assert_eq!(cli.addr, "127.0.0.1:3000");
        assert_eq!(config.account.store, default.account.store);
        assert_eq!(config.account.id, default.account.id);
        assert_eq!(config.account.mode, default.account.mode);
        assert_eq!(config.account.work, default.account.work);
        assert_eq!(
            config.account.initial_balance,
            default.account.initial_balance
        );
        assert_eq!(config.account.max_retries, default.account.max_retries);
        assert_eq!(config.account.lease, default.account.lease);
        assert_eq!(
            config.account.redis_require_aof,
            default.account.redis_require_aof
        );
        assert_eq!(config.server.shutdown_grace, default.server.shutdown_grace);
        assert_eq!(config.server.header_timeout, default.server.header_timeout);
        assert_eq!(config.server.body_timeout, default.server.body_timeout);
        assert_eq!(
            config.server.max_connections,
            default.server.max_connections
        );
        assert_eq!(
            config.server.max_connection_age,
            default.server.max_connection_age
        );
        assert_eq!(
            config.server.max_requests_per_connection,
            default.server.max_requests_per_connection
        );
        assert_eq!(config.server.max_viewers, default.server.max_viewers);
    }

    #[test]
    fn the_store_flags_build_the_store() {
        let cli = Cli::try_parse_from([
            "racebank",
            "--store",
            "postgres",
            "--database-url",
            "postgres://x@127.0.0.1/db",
            "--pool-size",
            "8",
        ])
        .unwrap();
        assert_eq!(
            cli.config().unwrap().account.store,
            StoreConfig::Postgres {
                url: "postgres://x@127.0.0.1/db".into(),
                pool_size: 8
            }
        );
    }

    #[test]
    fn redis_require_aof_is_a_switch() {
        let cli =
            Cli::try_parse_from(["racebank", "--store", "redis", "--redis-require-aof"]).unwrap();
        assert!(cli.config().unwrap().account.redis_require_aof);
    }

    #[test]
    fn the_mode_help_lists_every_mode_and_the_store_choices() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for mode in [
            "unguarded",
            "semaphore:N",
            "for-update",
            "fenced-write-only",
        ] {
            assert!(help.contains(mode), "{mode} missing from:\n{help}");
        }
        assert!(help.contains(&Mode::help()), "{help}");
        assert!(help.contains("memory"), "{help}");
    }

    #[test]
    fn an_address_may_name_a_host_and_allowed_hosts_repeat() {
        let cli = Cli::try_parse_from([
            "racebank",
            "--addr",
            "localhost:3000",
            "--allow-host",
            "Bank.Internal",
            "--allow-host",
            "other.internal",
        ])
        .unwrap();
        assert_eq!(cli.addr, "localhost:3000");
        assert_eq!(
            cli.config().unwrap().server.allowed_hosts,
            ["bank.internal", "other.internal"]
        );
        assert!(Cli::try_parse_from(["racebank", "--addr", "[::1]:3000"]).is_ok());
    }

    #[test]
    fn flags_are_checked() {
        for args in [
            &["racebank", "--mode", "spinlock"][..],
            &["racebank", "--work", "fast"],
            &["racebank", "--initial-balance", "-1"],
            &["racebank", "--addr", "localhost"],
            &["racebank", "--addr", "localhost:http"],
            &["racebank", "--addr", "exa mple:3000"],
            &["racebank", "--allow-host", "evil.example:80"],
            &["racebank", "--store", "mongo"],
            &["racebank", "--pool-size", "0"],
            &["racebank", "--account", "a b"],
            &["racebank", "--lease", "0"],
            &["racebank", "--header-timeout", "0"],
            &["racebank", "--body-timeout", "0s"],
            &["racebank", "--max-connections", "0"],
            &["racebank", "--max-viewers", "0"],
            &["racebank", "--max-requests-per-connection", "0"],
            &["racebank", "--max-connection-age", "0s"],
        ] {
            assert!(
                Cli::try_parse_from(args).is_err(),
                "{args:?} should be refused"
            );
        }
    }
}
