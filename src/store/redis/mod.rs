//! The Redis store: the balance in Redis, shared by every replica that names the same account.
//!
//! | mode                | section                                                           | 1 replica | 3 replicas |
//! |---------------------|-------------------------------------------------------------------|-----------|------------|
//! | `unguarded`         | `GET`; work; `SET balance $n GET`                                 | loses     | loses      |
//! | `mutex`             | the same inside the in-process mutex                              | safe      | loses      |
//! | `optimistic`        | `WATCH`; `GET`; work; `MULTI`; write; `EXEC`; nil -> redo          | safe      | safe       |
//! | `atomic`            | work; one script that checks funds and overflow and adds          | safe      | safe       |
//! | `lease`             | `SET lock token NX PX ttl`; `GET`; work; write; compare-and-delete | safe while the work ends before the lease | loses once it does |
//! | `fenced`            | the lease plus a fencing token the storage checks at read and write | safe    | safe       |
//! | `fenced-write-only` | the lease plus a token checked only at the write (a lesson)       | loses once the work outlasts the lease | same |
//!
//! Keys, per account: `racebank:{<id>}:balance` (a string), `:ledger` (a hash of the ledger's
//! counters), `:lock` (the lease), `:fence` (the last fencing token handed out), `:seen` (the
//! highest token the storage has accepted), `:generation` (moved by every reset), `:writes` (every
//! write counted) and `:halted` (why the account is refused): the last three are [`guard`]'s. The braces are a Redis Cluster hash tag: all of an
//! account's keys hash to one slot, as scripts touching several keys require there.
//!
//! Every write goes through one script that writes the balance and its ledger entry together
//! ([`scripts`]), so `/stats` is account-wide and exact across replicas. Everything runs over one
//! multiplexed `ConnectionManager` (it reconnects by itself), except `WATCH`, whose state belongs
//! to a connection: `optimistic` takes a dedicated one ([`dedicated`]).
//!
//! Failures: anything before the write was sent answers [`AccountError::Unavailable`] (503,
//! nothing written); a failure once the write was sent answers [`AccountError::OutcomeUnknown`];
//! an account that lost writes under this server answers [`AccountError::RolledBack`] ([`guard`]).
//! At start, [`persistence`] says what Redis keeps across a restart.

mod atomic;
pub(super) mod bank;
mod dedicated;
mod fenced;
mod guard;
mod lease;
mod optimistic;
mod persistence;
mod scripts;
mod unguarded;

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisError};

use crate::config::{start_redis, AccountConfig};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::idempotency::{Claim, IdempotencyKey, Remembered};
use crate::domain::ledger::Ledger;
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::money::{Op, Refusal};
use crate::domain::work::Work;

use dedicated::Dedicated;
use fenced::Check;
use guard::{Guarded, Mark, Watermark};
use lease::{Grant, Lock};

/// How long one command may take before the request gives up on it. Generous: a local Redis
/// answers in well under a millisecond, so only a Redis that is gone or stuck reaches it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Dedicated connections for `WATCH`, per server. A bounded set is a guard too: at most this many
/// optimistic requests of one replica are in the window at once, the rest wait for a connection
/// (the same reasoning as the PostgreSQL pool). 32 leaves the race wide open under the load
/// generator's default 64, like the PostgreSQL pool's default.
const WATCH_CONNECTIONS: usize = 32;

/// The account in Redis.
pub(crate) struct Redis {
    keys: Keys,
    connection: ConnectionManager,
    strategy: Strategy,
    /// The highest point of the account's history this replica has seen ([`guard`]).
    watermark: Watermark,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("keys", &self.keys)
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Strategy {
    Unguarded,
    Optimistic {
        max_retries: u32,
        connections: Box<Dedicated>,
    },
    Atomic,
    Lease {
        ttl: Duration,
    },
    Fenced {
        ttl: Duration,
        check: Check,
    },
}

impl Strategy {
    /// The strategy that runs `config`'s mode; none for a mode this store does not run
    /// ([`Mode::runs_on`] says which, and a test checks that the two agree).
    fn of(config: &AccountConfig, client: &Client) -> Option<Self> {
        match config.mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) | Mode::AccountLocks => {
                Some(Strategy::Unguarded)
            }
            Mode::Optimistic => Some(Strategy::Optimistic {
                max_retries: config.max_retries,
                connections: Box::new(Dedicated::new(client.clone(), WATCH_CONNECTIONS)),
            }),
            Mode::Atomic => Some(Strategy::Atomic),
            Mode::Lease => Some(Strategy::Lease { ttl: config.lease }),
            Mode::Fenced => Some(Strategy::Fenced {
                ttl: config.lease,
                check: Check::ReadAndWrite,
            }),
            Mode::FencedWriteOnly => Some(Strategy::Fenced {
                ttl: config.lease,
                check: Check::WriteOnly,
            }),
            Mode::ForUpdate | Mode::Advisory | Mode::RepeatableRead | Mode::Serializable => None,
        }
    }
}

/// The names of one account's keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    balance: String,
    ledger: String,
    lock: String,
    fence: String,
    seen: String,
    /// The account's resets, counted: an idempotency key's answer of an older generation is void.
    generation: String,
    /// The account's writes (and resets), counted: the guard's clock ([`guard`]).
    writes: String,
    /// Why the account is refused, once the guard found it lost writes.
    halted: String,
    /// The prefix of the idempotency keys' answers.
    idempotency: String,
}

impl Keys {
    fn new(account: &str) -> Self {
        let key = |name: &str| format!("racebank:{{{account}}}:{name}");
        Self {
            balance: key("balance"),
            ledger: key("ledger"),
            lock: key("lock"),
            fence: key("fence"),
            seen: key("seen"),
            generation: key("generation"),
            writes: key("writes"),
            halted: key("halted"),
            idempotency: key("idempotency:"),
        }
    }

    /// The string keeping the answer for an idempotency key: `racebank:{<id>}:idempotency:<key>`.
    fn answer(&self, key: &IdempotencyKey) -> String {
        format!("{}{}", self.idempotency, key.as_str())
    }
}

impl Redis {
    /// Connects, checks that Redis answers, and creates the account unless it exists.
    pub(crate) async fn open(config: &AccountConfig, url: &str) -> Result<Self, OpenError> {
        let client = client(url)?;
        config.mode.check_store(StoreKind::Redis)?;
        let strategy = Strategy::of(config, &client)
            .ok_or_else(|| OpenError::Store(format!("no Redis strategy runs `{}`", config.mode)))?;
        let mut connection = connect(&client, url).await?;
        persistence::check(&mut connection, config.redis_require_aof).await?;
        let keys = Keys::new(config.id.as_str());
        let (created, generation, writes, halted): (i64, u64, u64, String) = scripts::CREATE_SCRIPT
            .key(&keys.balance)
            .key(&keys.ledger)
            .key(&keys.writes)
            .key(&keys.generation)
            .key(&keys.halted)
            .arg(config.initial_balance)
            .invoke_async(&mut connection)
            .await
            .map_err(|error| OpenError::Store(format!("cannot create the account: {error}")))?;
        if halted.is_empty() {
            tracing::info!(account = %config.id, created = created == 1, generation, writes, "redis account ready");
        } else {
            // Logged (and refused on every request) rather than fatal: the operator's way out is
            // a reset, which needs a running server.
            let _ = guard::refused(&keys, &halted);
        }
        let watermark = Watermark::default();
        watermark.observe(Mark { generation, writes });
        Ok(Self {
            keys,
            connection,
            strategy,
            watermark,
        })
    }

    /// Applies `op` through the mode's section and returns the balance this request wrote.
    pub(crate) async fn apply(
        &self,
        work: &Work,
        op: Op,
        claim: Option<&Claim<'_>>,
    ) -> Result<i64, AccountError> {
        let section = Section {
            keys: &self.keys,
            watermark: &self.watermark,
            connection: self.connection.clone(),
            work,
            op,
            claim: claim.map(|claim| (self.keys.answer(claim.key), claim.ttl_millis())),
        };
        let outcome = match &self.strategy {
            Strategy::Unguarded => unguarded::apply(section).await,
            Strategy::Optimistic {
                max_retries,
                connections,
            } => optimistic::apply(section, connections, *max_retries).await,
            // The script counts its own refusals, in the same step as the check.
            Strategy::Atomic => return atomic::apply(section).await,
            Strategy::Lease { ttl } => lease::apply(section, *ttl).await,
            Strategy::Fenced { ttl, check } => fenced::apply(section, *ttl, *check).await,
        };
        if let Err(AccountError::Refused(Refusal::InsufficientFunds { .. })) = outcome {
            self.count("refused_count", 1).await;
        }
        outcome
    }

    /// The answer kept for `key`, unless it expired (Redis drops it then) or was kept before the
    /// last reset. The generation and the answer are read together (`MGET`).
    pub(crate) async fn lookup(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Remembered>, AccountError> {
        let (generation, kept): (Option<String>, Option<String>) = self
            .connection
            .clone()
            .mget(&[&self.keys.generation, &self.keys.answer(key)])
            .await
            .map_err(unavailable)?;
        let Some(kept) = kept else {
            return Ok(None);
        };
        // `<generation> <answer>`: an answer of another generation was kept before a reset.
        let generation = generation.as_deref().unwrap_or("0");
        let Some(answer) = kept
            .strip_prefix(generation)
            .and_then(|rest| rest.strip_prefix(' '))
        else {
            return Ok(None);
        };
        parse_answer(answer).map(Some).ok_or_else(|| {
            tracing::warn!(%kept, "redis: a kept answer does not decode");
            AccountError::Unavailable {
                store: "redis",
                detail: format!("the answer kept for the key does not decode: {kept:?}"),
            }
        })
    }

    /// Keeps a refusal's `answer` for the claim's key unless the key has one of this generation;
    /// says whether it did.
    pub(crate) async fn remember(
        &self,
        claim: &Claim<'_>,
        answer: Remembered,
    ) -> Result<bool, AccountError> {
        let value = format!(
            "{} {} {} {}",
            answer.op.kind(),
            answer.op.amount(),
            answer.status(),
            answer.balance()
        );
        let kept: i64 = scripts::REMEMBER_SCRIPT
            .key(self.keys.answer(claim.key))
            .key(&self.keys.generation)
            .arg(value)
            .arg(claim.ttl_millis())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(kept == 1)
    }

    /// The balance now.
    pub(crate) async fn balance(&self) -> Result<i64, AccountError> {
        let balance: Guarded<Option<i64>> =
            guarded(&scripts::READ_SCRIPT, &self.keys, &self.watermark)
                .key(&self.keys.balance)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(unavailable)?;
        balance
            .open(&self.watermark, &self.keys)?
            .ok_or_else(|| missing(&self.keys))
    }

    /// The account-wide ledger and the balance, read together in one guarded script.
    pub(crate) async fn ledger(&self) -> Result<(Ledger, i64), AccountError> {
        let read: Guarded<(Option<i64>, HashMap<String, i64>)> =
            guarded(&scripts::LEDGER_SCRIPT, &self.keys, &self.watermark)
                .key(&self.keys.balance)
                .key(&self.keys.ledger)
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(unavailable)?;
        let (balance, fields) = read.open(&self.watermark, &self.keys)?;
        let balance = balance.ok_or_else(|| missing(&self.keys))?;
        Ok((ledger_from(&fields), balance))
    }

    /// Sets the balance and zeroes every counter, for every replica, and fences out old leases.
    ///
    /// In the lease modes the reset takes the lock first, as a request does: a reset landing in a
    /// holder's window would be erased by its write (`lease`), or would fail the holder's write
    /// (`fenced`). `optimistic` sees the balance move and redoes; `atomic` has no window.
    pub(crate) async fn reset(&self, work: &Work, balance: i64) -> Result<(), AccountError> {
        let lock = match &self.strategy {
            Strategy::Lease { ttl } => Some(
                Lock::acquire_for(&self.connection, &self.keys, work, *ttl, Grant::Plain).await?,
            ),
            Strategy::Fenced { ttl, .. } => Some(
                Lock::acquire_for(&self.connection, &self.keys, work, *ttl, Grant::Fenced).await?,
            ),
            _ => None,
        };
        let reset = self.reset_now(balance).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        reset
    }

    /// The reset itself, one script.
    async fn reset_now(&self, balance: i64) -> Result<(), AccountError> {
        let (generation, writes): (u64, u64) = scripts::RESET_SCRIPT
            .key(&self.keys.balance)
            .key(&self.keys.ledger)
            .key(&self.keys.fence)
            .key(&self.keys.seen)
            .key(&self.keys.generation)
            .key(&self.keys.writes)
            .key(&self.keys.halted)
            .arg(balance)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(after_write)?;
        self.watermark.restart_at(Mark { generation, writes });
        Ok(())
    }

    /// Adds to a ledger counter outside a write (refusals, retries). Not worth failing a request
    /// over: the answer is already decided, so a failure here is logged.
    async fn count(&self, field: &str, by: u64) {
        let counted: Result<i64, _> = self
            .connection
            .clone()
            .hincr(&self.keys.ledger, field, by)
            .await;
        if let Err(error) = counted {
            tracing::warn!(%error, field, "could not count in the Redis ledger");
        }
    }
}

/// The client for `url`, or why it is not a Redis URL.
fn client(url: &str) -> Result<Client, OpenError> {
    Client::open(url).map_err(|error| {
        OpenError::Store(format!(
            "`{url}` is not a Redis URL ({error}); use redis://host:port"
        ))
    })
}

/// The shared connection (it reconnects by itself), once Redis has answered a `PING`; or one
/// line saying how to start Redis where `url` points.
async fn connect(client: &Client, url: &str) -> Result<ConnectionManager, OpenError> {
    // The start command names the URL's port: a Redis on 6380 is started on 6380.
    let start = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(_, port) | redis::ConnectionAddr::TcpTls { port, .. } => {
            start_redis(*port)
        }
        _ => start_redis(6379),
    };
    let unreachable = |error: RedisError| {
        OpenError::Store(format!(
            "cannot reach Redis at {url} ({error}); start it with: {start}"
        ))
    };
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        // Few, short reconnection attempts: while Redis is gone, requests should get their
        // 503 quickly rather than wait out a long backoff.
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200));
    let mut connection = ConnectionManager::new_with_config(client.clone(), manager_config)
        .await
        .map_err(unreachable)?;
    let _: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(unreachable)?;
    Ok(connection)
}

/// What every strategy works with: the keys, a connection, the work and the operation.
pub(super) struct Section<'a> {
    keys: &'a Keys,
    watermark: &'a Watermark,
    connection: ConnectionManager,
    work: &'a Work,
    op: Op,
    /// With an idempotency key: the string keeping its answer, and its time to live in ms.
    claim: Option<(String, i64)>,
}

impl Section<'_> {
    /// `GET balance`, for the strategies that read before they work.
    async fn read(&mut self) -> Result<i64, AccountError> {
        let balance: Guarded<Option<i64>> =
            guarded(&scripts::READ_SCRIPT, self.keys, self.watermark)
                .key(&self.keys.balance)
                .invoke_async(&mut self.connection)
                .await
                .map_err(unavailable)?;
        balance
            .open(self.watermark, self.keys)?
            .ok_or_else(|| missing(self.keys))
    }

    /// A guarded script's invocation for this section ([`guarded`]).
    fn guarded<'s>(&self, script: &'s redis::Script) -> redis::ScriptInvocation<'s> {
        guarded(script, self.keys, self.watermark)
    }

    /// The blind write with its ledger entry ([`scripts`]' `OVERWRITE`); returns the balance it
    /// replaced, or `KeyInUse` if its idempotency key was answered meanwhile (nothing written).
    async fn overwrite(&mut self, read: i64, new_balance: i64) -> Result<i64, AccountError> {
        let (kind, amount) = kind_and_amount(self.op);
        let mut invocation = self.guarded(&scripts::OVERWRITE_SCRIPT);
        invocation
            .key(&self.keys.balance)
            .key(&self.keys.ledger)
            .arg(new_balance)
            .arg(read)
            .arg(-read)
            .arg(kind)
            .arg(amount);
        self.keyed(&mut invocation);
        let replaced: Guarded<Option<i64>> = invocation
            .invoke_async(&mut self.connection)
            .await
            .map_err(after_write)?;
        replaced
            .open(self.watermark, self.keys)?
            .ok_or(AccountError::KeyInUse)
    }

    /// Adds the idempotency key and the account's generation, if keyed, as a script's last keys,
    /// and the key's time to live as its last argument.
    fn keyed(&self, invocation: &mut redis::ScriptInvocation<'_>) {
        if let Some((key, ttl)) = &self.claim {
            invocation.key(key).key(&self.keys.generation).arg(ttl);
        }
    }
}

/// A guarded script's invocation ([`guard`]): the guard's keys and this replica's watermark first;
/// the script's own keys and arguments follow.
fn guarded<'s>(
    script: &'s redis::Script,
    keys: &Keys,
    watermark: &Watermark,
) -> redis::ScriptInvocation<'s> {
    let mark = watermark.get();
    let mut invocation = script.key(&keys.writes);
    invocation
        .key(&keys.generation)
        .key(&keys.halted)
        .arg(mark.generation)
        .arg(mark.writes);
    invocation
}

/// The ledger's name for an operation, and its amount.
fn kind_and_amount(op: Op) -> (&'static str, i64) {
    (op.kind(), op.amount())
}

/// Builds the ledger from its hash; a field never written is zero.
fn ledger_from(fields: &HashMap<String, i64>) -> Ledger {
    let field = |name: &str| fields.get(name).copied().unwrap_or(0);
    let count = |name: &str| u64::try_from(field(name)).unwrap_or(0);
    // A total is `carry * 2^63 + field` (see `scripts`).
    let total =
        |name: &str| (i128::from(field(&format!("{name}_carry"))) << 63) + i128::from(field(name));
    Ledger {
        initial_balance: field("initial_balance"),
        deposit_count: count("deposit_count"),
        deposit_sum: total("deposit_sum"),
        withdrawal_count: count("withdrawal_count"),
        withdrawal_sum: total("withdrawal_sum"),
        refused_count: count("refused_count"),
        lost_updates: count("lost_updates"),
        lost_net: total("lost_net"),
        lost_removed: total("lost_removed"),
        lost_added: total("lost_added"),
        retries: count("retries"),
        retries_exhausted: count("retries_exhausted"),
    }
}

/// A failure before anything was written.
#[allow(
    clippy::needless_pass_by_value,
    reason = "called as `map_err(unavailable)`, which hands the error over"
)]
fn unavailable(error: RedisError) -> AccountError {
    tracing::warn!(%error, "redis failed before the write");
    AccountError::Unavailable {
        store: "redis",
        detail: error.to_string(),
    }
}

/// A failure once the write may have been sent: only a refused connection proves it was not.
fn after_write(error: RedisError) -> AccountError {
    if error.is_connection_refusal() {
        return unavailable(error);
    }
    tracing::warn!(%error, "redis failed while writing");
    AccountError::OutcomeUnknown {
        store: "redis",
        detail: error.to_string(),
    }
}

/// An answer as [`Redis::remember`] and the write scripts keep it: `<kind> <amount> <status>
/// <balance>`.
fn parse_answer(kept: &str) -> Option<Remembered> {
    let mut parts = kept.split(' ');
    let kind = parts.next()?;
    let amount = parts.next()?.parse().ok()?;
    let status = parts.next()?.parse().ok()?;
    let balance = parts.next()?.parse().ok()?;
    Remembered::from_parts(kind, amount, status, balance)
}

/// The balance key is gone, after the guard let the script through: only a read outside the
/// scripts (`optimistic`'s `WATCH`ed `GET`) can see it. The account existed when this server
/// started, so it vanished.
fn missing(keys: &Keys) -> AccountError {
    guard::refused(
        keys,
        "vanished: its balance is missing from Redis, with every write since it was created",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::MATRIX;

    #[test]
    fn the_redis_store_runs_exactly_the_modes_the_matrix_gives_it() {
        let client = Client::open("redis://127.0.0.1:6379").expect("a Redis URL");
        for row in &MATRIX {
            let config = AccountConfig {
                mode: row.mode,
                ..AccountConfig::default()
            };
            let runs = row.mode.runs_on(StoreKind::Redis);
            assert_eq!(
                Strategy::of(&config, &client).is_some(),
                runs,
                "{}",
                row.name
            );
        }
    }

    #[test]
    fn an_account_s_keys_share_one_hash_tag() {
        let keys = Keys::new("main");
        assert_eq!(keys.balance, "racebank:{main}:balance");
        assert_eq!(keys.ledger, "racebank:{main}:ledger");
        assert_eq!(keys.seen, "racebank:{main}:seen");
        assert_eq!(keys.generation, "racebank:{main}:generation");
    }

    #[test]
    fn a_total_past_i64_is_carry_times_two_to_the_63_plus_the_field() {
        let fields = HashMap::from([
            ("deposit_sum".to_string(), 5),
            ("deposit_sum_carry".to_string(), 2),
            ("lost_net".to_string(), -3),
            ("lost_net_carry".to_string(), -1),
        ]);
        let ledger = ledger_from(&fields);
        assert_eq!(ledger.deposit_sum, 2 * (1i128 << 63) + 5);
        assert_eq!(ledger.lost_net, -(1i128 << 63) - 3);
        assert_eq!(ledger.withdrawal_sum, 0);
    }
}
