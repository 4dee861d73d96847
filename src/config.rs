//! What an account and a server are made of, as plain values: no command line here.
//!
//! The `racebank` binary builds these from flags (`src/bin/racebank/cli.rs`); tests, benchmarks and
//! the load generator's demo build them directly. The values are made of the account's parts (a
//! [`Mode`], a [`WorkSpec`]) and nothing above them, so the stores, the [`Account`](crate::Account)
//! and the HTTP layer all read the same plain configuration. The defaults other crates share (the
//! local PostgreSQL and Redis, the pool size) are here too.

use std::time::Duration;

use crate::domain::error::OpenError;
pub use crate::domain::id::AccountId;
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::work::WorkSpec;

/// The local PostgreSQL server, as the machines this project runs on have it.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The local Redis server.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Connections per server to PostgreSQL by default. The load generator's default concurrency is
/// 64, so 32 connections leave the race wide open (32 requests in the window at once) while three
/// replicas stay under PostgreSQL's default of 100 connections.
pub const DEFAULT_POOL_SIZE: usize = 32;

/// How to start the local Redis the way CI does: the one line an unreachable Redis is answered with.
pub const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

/// [`START_REDIS`] for a Redis on `port`: a URL on another port is answered with a command that
/// starts a Redis where the URL points, not on 6379.
pub fn start_redis(port: u16) -> String {
    START_REDIS.replace("--port 6379", &format!("--port {port}"))
}

/// Everything `serve` needs besides a listener.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The account to serve.
    pub account: AccountConfig,
    /// Server-wide settings.
    pub server: ServerConfig,
}

impl Config {
    /// Refuses a configuration that cannot run (a mode its store does not run, or whose bank
    /// does not run it) before anything is opened or bound: the binary calls it before it binds
    /// its port, and [`serve`](crate::serve) before it opens the account.
    pub fn validate(&self) -> Result<(), OpenError> {
        let store = self.account.store.kind();
        if self.account.bank.is_some() {
            self.account.mode.check_bank_store(store)
        } else {
            self.account.mode.check_store(store)
        }
    }
}

/// Settings of the server around the account: how long it waits for a stopping server, and how
/// much it lets slow, idle or greedy clients hold (docs/hardening.md).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// On shutdown, how long requests in flight may take to finish before they are cut short.
    pub shutdown_grace: Duration,
    /// How long a connection may take to deliver a request's head, counted from when the server
    /// starts waiting for it: from the accept for the first request, from the end of the previous
    /// answer for the next. So it is also how long an idle keep-alive connection stays open. It is
    /// checked once per timeout, so such a connection is closed after between one and two.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive once its head has; past it, 408.
    pub body_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Faults to inject (`--chaos`); none by default.
    pub chaos: crate::chaos::Chaos,
    /// How long a connection may stay open: past it, its next answer says `Connection: close`
    /// (or it is closed once quiet), so no client keeps a connection forever.
    pub max_connection_age: Duration,
    /// Requests a connection may carry: the last one's answer says `Connection: close`.
    pub max_requests_per_connection: u64,
    /// Live-page event streams open at once (`--max-viewers`); they hold no connection slot.
    /// Further viewers get 503 with `Retry-After`.
    pub max_viewers: usize,
    /// Host names served besides the loopback ones and the bound address (`--allow-host`): a
    /// request whose `Host` names anything else gets 421, against DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 512,
            chaos: crate::chaos::Chaos::default(),
            allowed_hosts: Vec::new(),
            max_connection_age: Duration::from_secs(60),
            max_requests_per_connection: 1000,
            max_viewers: 100,
        }
    }
}

/// One account: where it lives, how it is guarded, and what each request does in its window.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Where the balance lives.
    pub store: StoreConfig,
    /// Which account of the store: replicas that name the same one share it.
    pub id: AccountId,
    /// How the read -> work -> write section is guarded.
    pub mode: Mode,
    /// What each request does between reading and writing the balance.
    pub work: WorkSpec,
    /// The balance of a new account, and of a reset without a body.
    pub initial_balance: i64,
    /// How often a strategy that redoes its section on conflict tries again before it answers 503.
    pub max_retries: u32,
    /// How long a lease lasts (Redis `lease` and `fenced` modes).
    pub lease: Duration,
    /// How long the answer to a request with an `Idempotency-Key` is kept for its repeats.
    pub idempotency_ttl: Duration,
    /// Refuse to start on a Redis that does not keep every write in its append-only file
    /// (`appendonly yes`): without it a restart or a crash loses acknowledged writes.
    pub redis_require_aof: bool,
    /// The bank beside the account (`--accounts`), if the server opens one.
    pub bank: Option<crate::domain::bank::BankSpec>,
    /// The order in which `account-locks` and `for-update` lock a bank request's accounts.
    pub lock_order: crate::domain::bank::LockOrder,
}

impl AccountConfig {
    /// An in-memory account in `mode` doing `work`, with the other settings at their defaults.
    pub fn memory(mode: Mode, work: WorkSpec) -> Self {
        Self {
            mode,
            work,
            ..Self::default()
        }
    }
}

impl Default for AccountConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::Memory,
            id: AccountId::default(),
            mode: Mode::Unguarded,
            work: WorkSpec::Sleep(Duration::from_millis(1)),
            initial_balance: 0,
            max_retries: 1000,
            lease: Duration::from_millis(100),
            idempotency_ttl: crate::domain::idempotency::DEFAULT_TTL,
            redis_require_aof: false,
            bank: None,
            lock_order: crate::domain::bank::LockOrder::default(),
        }
    }
}

/// Where the balance lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process: fast, and gone when the process stops.
    Memory,
    /// A row in PostgreSQL, shared by every replica that names the same account.
    Postgres {
        /// `postgres://user@host:port/database`.
        url: String,
        /// Connections this server opens at most: a pool smaller than the load is a guard too.
        pool_size: usize,
    },
    /// Keys in Redis, shared by every replica that names the same account.
    Redis {
        /// `redis://host:port`.
        url: String,
    },
}

impl StoreConfig {
    /// Which store this is.
    pub(crate) fn kind(&self) -> StoreKind {
        match self {
            StoreConfig::Memory => StoreKind::Memory,
            StoreConfig::Postgres { .. } => StoreKind::Postgres,
            StoreConfig::Redis { .. } => StoreKind::Redis,
        }
    }

    /// The store's name, as `--store` takes it.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The most connections this server opens to its store, where it keeps a pool.
    pub(crate) fn pool_size(&self) -> Option<usize> {
        match self {
            StoreConfig::Postgres { pool_size, .. } => Some(*pool_size),
            StoreConfig::Memory | StoreConfig::Redis { .. } => None,
        }
    }
}
