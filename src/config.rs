//! Flags, each with an environment-variable fallback (`RACEBANK_MODE`, `RACEBANK_ADDR`, ...).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::duration::parse_duration;
use crate::strategy::Mode;
use crate::work::WorkSpec;

/// The command line of the `racebank` binary.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "racebank",
    version,
    about = "A bank account over HTTP that loses updates on purpose (--mode unguarded) and the strategies that stop it",
    after_help = "Try: racebank --mode unguarded --work rendezvous:2, then send two deposits at once."
)]
pub struct Cli {
    /// Address to listen on. Loopback by default: this server is for experiments, not the internet.
    #[arg(long, env = "RACEBANK_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// How the account is served.
    #[command(flatten)]
    pub config: Config,
}

/// How the account behaves: everything `serve` needs besides a listener.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// How the read -> work -> write section is guarded: unguarded, mutex, semaphore:N, optimistic
    /// or atomic.
    #[arg(long, env = "RACEBANK_MODE", default_value = "unguarded")]
    pub mode: Mode,

    /// What each request does between reading and writing the balance: none, yield, a duration
    /// (2ms), a random range (0ms..5ms) or rendezvous:N. The default, 1ms, is long enough that
    /// concurrent requests always overlap.
    #[arg(long, env = "RACEBANK_WORK", default_value = "1ms")]
    pub work: WorkSpec,

    /// The balance at start, in minor units (cents).
    #[arg(long, env = "RACEBANK_INITIAL_BALANCE", default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub initial_balance: i64,

    /// How often an optimistic request redoes its work after a conflict before it answers 503.
    #[arg(long, env = "RACEBANK_MAX_RETRIES", default_value_t = 1000)]
    pub max_retries: u32,

    /// On Ctrl-C or SIGTERM, how long requests in flight may take to finish before the server stops
    /// anyway (a request stopped this way has written nothing).
    #[arg(long, env = "RACEBANK_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Unguarded,
            work: WorkSpec::Sleep(Duration::from_millis(1)),
            initial_balance: 0,
            max_retries: 1000,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_of_the_flags_match_config_default() {
        let cli = Cli::try_parse_from(["racebank"]).unwrap();
        let default = Config::default();
        assert_eq!(cli.addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(cli.config.mode, default.mode);
        assert_eq!(cli.config.work, default.work);
        assert_eq!(cli.config.initial_balance, default.initial_balance);
        assert_eq!(cli.config.max_retries, default.max_retries);
        assert_eq!(cli.config.shutdown_grace, default.shutdown_grace);
    }

    #[test]
    fn flags_are_checked() {
        for args in [
            &["racebank", "--mode", "spinlock"][..],
            &["racebank", "--work", "fast"],
            &["racebank", "--initial-balance", "-1"],
            &["racebank", "--addr", "localhost"],
        ] {
            assert!(
                Cli::try_parse_from(args).is_err(),
                "{args:?} should be refused"
            );
        }
    }
}
