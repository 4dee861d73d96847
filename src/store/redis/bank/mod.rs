//! The bank in Redis, shared by every replica that names the same `--account`.
//!
//! | mode | a move's section | 1 replica | 3 replicas |
//! |---|---|---|---|
//! | `unguarded` | `MGET` what it reads; work; one script: `SET ... GET` each write, and the ledger | loses | loses |
//! | `mutex`, `semaphore:N`, `account-locks` | the same inside the in-process guard ([`crate::bank`]) | safe (`semaphore`: loses) | loses |
//! | `optimistic` | `WATCH` what it reads; `MGET`; work; `MULTI`; the write script; `EXEC`; nil -> redo | safe | safe |
//! | `atomic` | work; one script that reads, checks the rule and moves the money | safe | safe |
//! | `lease` | a lease on every account it reads, taken in id order; the unguarded section; release | safe while the work ends before the lease | the same |
//!
//! A read of every balance (`GET /accounts`) is one `MGET` (a snapshot), except in the unguarded
//! family, where it reads one balance at a time with the work between two reads, as a report
//! doing something slow per account would: a transfer landing between two reads shows half done.
//!
//! Keys, under the account's hash tag (`racebank:{<account>}:bank:`): `balance:<id>` per account,
//! `lock:<id>` (its lease), `ledger` (a hash, [`scripts`]) and `scratch` (the atomic script's sum,
//! gone when the script ends). One hash tag, so every script may touch any of the bank's keys in
//! Redis Cluster too. `fenced` and `fenced-write-only` are the single account's lessons and do not
//! run here.
//!
//! Failures map as the single account's do: before the write [`AccountError::Unavailable`], once
//! the write was sent [`AccountError::OutcomeUnknown`]. The account's own store opened first (the
//! server opens the account before the bank), so the persistence check has run; the bank does not
//! keep the account's rollback guard.

mod atomic;
mod lease;
mod optimistic;
mod scripts;
mod unguarded;

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::dedicated::Dedicated;
use super::{after_write, client, connect, unavailable, WATCH_CONNECTIONS};
use crate::config::AccountConfig;
use crate::domain::bank::{AccountLedger, BankLedger, BankSpec, Move};
use crate::domain::error::{AccountError, OpenError};
use crate::domain::mode::{Mode, StoreKind};
use crate::domain::work::Work;
use crate::store::ReadAll;

/// The bank in Redis.
pub(crate) struct RedisBank {
    spec: BankSpec,
    keys: BankKeys,
    connection: ConnectionManager,
    strategy: Strategy,
}

impl std::fmt::Debug for RedisBank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBank")
            .field("ledger", &self.keys.ledger)
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
}

/// The names of the bank's keys.
#[derive(Debug, Clone)]
struct BankKeys {
    /// Every account's balance, in the bank's order.
    balances: Vec<String>,
    /// Every account's lease, in the bank's order.
    locks: Vec<String>,
    ledger: String,
    scratch: String,
}

impl BankKeys {
    fn new(account: &str, spec: &BankSpec) -> Self {
        let key = |name: &str| format!("racebank:{{{account}}}:bank:{name}");
        let each = |name: &str| {
            (0..spec.len())
                .map(|position| key(&format!("{name}:{}", spec.id(position))))
                .collect()
        };
        Self {
            balances: each("balance"),
            locks: each("lock"),
            ledger: key("ledger"),
            scratch: key("scratch"),
        }
    }
}

impl RedisBank {
    /// Connects, creates the accounts that do not exist yet at their opening balances, and joins
    /// the rest.
    pub(crate) async fn open(
        config: &AccountConfig,
        url: &str,
        spec: &BankSpec,
    ) -> Result<Self, OpenError> {
        let client = client(url)?;
        config.mode.check_bank_store(StoreKind::Redis)?;
        let strategy = match config.mode {
            Mode::Unguarded | Mode::Mutex | Mode::Semaphore(_) | Mode::AccountLocks => {
                Strategy::Unguarded
            }
            Mode::Optimistic => Strategy::Optimistic {
                max_retries: config.max_retries,
                connections: Box::new(Dedicated::new(client.clone(), WATCH_CONNECTIONS)),
            },
            Mode::Atomic => Strategy::Atomic,
            Mode::Lease => Strategy::Lease { ttl: config.lease },
            // Refused by `check_bank_store` above, with the modes the bank runs.
            mode => {
                return Err(OpenError::Store(format!(
                    "the Redis bank does not run `{mode}`"
                )))
            }
        };
        let mut connection = connect(&client, url).await?;
        let keys = BankKeys::new(config.id.as_str(), spec);
        let mut invocation = scripts::OPEN_SCRIPT.key(&keys.ledger);
        for (position, opening) in spec.openings().into_iter().enumerate() {
            invocation
                .key(&keys.balances[position])
                .arg(spec.id(position).as_str())
                .arg(opening);
        }
        let created: u64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|error| OpenError::Store(format!("cannot open the bank: {error}")))?;
        tracing::info!(account = %config.id, accounts = spec.len(), created, "redis bank ready");
        Ok(Self {
            spec: spec.clone(),
            keys,
            connection,
            strategy,
        })
    }

    /// Applies `mv` through the mode's section and returns the balances it wrote, in
    /// [`Move::writes`] order.
    pub(crate) async fn apply(
        &self,
        spec: &BankSpec,
        work: &Work,
        mv: Move,
    ) -> Result<Vec<i64>, AccountError> {
        let section = Section {
            bank: self,
            spec,
            work,
            mv,
        };
        match &self.strategy {
            Strategy::Unguarded => unguarded::apply(&section).await,
            Strategy::Optimistic {
                max_retries,
                connections,
            } => optimistic::apply(&section, connections, *max_retries).await,
            Strategy::Atomic => atomic::apply(&section).await,
            Strategy::Lease { ttl } => lease::apply(&section, *ttl).await,
        }
    }

    /// Every balance: one `MGET`, or (the unguarded family) one `GET` at a time with the work
    /// between two of them.
    pub(crate) async fn read_all(&self, work: &Work) -> Result<ReadAll, AccountError> {
        let mut connection = self.connection.clone();
        if !matches!(self.strategy, Strategy::Unguarded) {
            let balances: Vec<Option<i64>> = connection
                .mget(&self.keys.balances)
                .await
                .map_err(unavailable)?;
            return Ok(ReadAll::snapshot(self.present(balances)?));
        }
        let mut balances = Vec::with_capacity(self.keys.balances.len());
        for (position, key) in self.keys.balances.iter().enumerate() {
            if position > 0 {
                work.run().await?;
            }
            let balance: Option<i64> = connection.get(key).await.map_err(unavailable)?;
            balances.push(balance);
        }
        Ok(ReadAll::rows(self.present(balances)?))
    }

    /// The ledger and every balance, read together in one script.
    pub(crate) async fn ledger(&self) -> Result<(BankLedger, Vec<i64>), AccountError> {
        let mut invocation = scripts::LEDGER_SCRIPT.key(&self.keys.ledger);
        invocation.key(&self.keys.balances);
        let (fields, balances): (HashMap<String, i64>, Vec<Option<i64>>) = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok((ledger_from(&self.spec, &fields), self.present(balances)?))
    }

    /// Opens every account again with `balances` and a fresh ledger, for every replica. Under
    /// `lease` it takes every account's lease first, as a request does: a reset landing in a
    /// holder's window would be erased by its write.
    pub(crate) async fn reset(&self, work: &Work, balances: &[i64]) -> Result<(), AccountError> {
        let spec = &self.spec;
        let leases = match &self.strategy {
            Strategy::Lease { ttl } => {
                let all: Vec<usize> = (0..spec.len()).collect();
                Some(lease::Leases::acquire(self, spec, work, &all, *ttl).await?)
            }
            _ => None,
        };
        let mut invocation = scripts::RESET_SCRIPT.key(&self.keys.ledger);
        for (position, balance) in balances.iter().enumerate() {
            invocation
                .key(&self.keys.balances[position])
                .arg(spec.id(position).as_str())
                .arg(balance);
        }
        let reset: Result<i64, _> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(after_write);
        if let Some(leases) = leases {
            leases.release().await;
        }
        reset.map(drop)
    }

    /// The balances read, or the error of an account whose balance is missing.
    fn present(&self, balances: Vec<Option<i64>>) -> Result<Vec<i64>, AccountError> {
        balances
            .into_iter()
            .enumerate()
            .map(|(position, balance)| balance.ok_or_else(|| self.vanished(position)))
            .collect()
    }

    /// A balance missing from Redis: the bank existed when this server opened it, so it vanished.
    fn vanished(&self, position: usize) -> AccountError {
        let key = &self.keys.balances[position];
        tracing::error!(%key, "a bank account's balance is missing from Redis");
        AccountError::RolledBack(format!(
            "the bank's balance `{key}` is missing from Redis: it lost acknowledged writes; \
             reset the bank (POST /bank/reset)"
        ))
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
            tracing::warn!(%error, field, "could not count in the Redis bank's ledger");
        }
    }
}

/// What every section works with: the bank, the move and the work.
struct Section<'a> {
    bank: &'a RedisBank,
    spec: &'a BankSpec,
    work: &'a Work,
    mv: Move,
}

impl Section<'_> {
    /// The balance keys of `positions`.
    fn keys(&self, positions: &[usize]) -> Vec<&str> {
        positions
            .iter()
            .map(|&p| self.bank.keys.balances[p].as_str())
            .collect()
    }

    /// The ledger's name for the move's count, and the ids it debits and credits ('' for none).
    fn entry(&self) -> (&'static str, &str, &str) {
        let id = |position: usize| self.spec.id(position).as_str();
        match self.mv {
            Move::Deposit { to, .. } => ("deposits", "", id(to)),
            Move::Withdraw { from, .. } => ("withdrawals", id(from), ""),
            Move::Transfer { from, to, .. } => ("transfers", id(from), id(to)),
        }
    }

    /// Pairs balances read (in `positions`' order) with their positions.
    fn pair(
        &self,
        positions: &[usize],
        balances: Vec<Option<i64>>,
    ) -> Result<Vec<(usize, i64)>, AccountError> {
        positions
            .iter()
            .zip(balances)
            .map(|(&p, balance)| Ok((p, balance.ok_or_else(|| self.bank.vanished(p))?)))
            .collect()
    }

    /// The balances the move writes, or its refusal, counted.
    async fn settle(&self, read: &[(usize, i64)]) -> Result<Vec<(usize, i64)>, AccountError> {
        match self.mv.settle(self.spec, read) {
            Ok(written) => Ok(written),
            Err(refusal) => {
                self.bank.count("refused", 1).await;
                Err(refusal.into())
            }
        }
    }

    /// The write script's keys and arguments for `written` over `read` ([`scripts`]' `WRITE`):
    /// the ledger and the balances as keys, then the arguments, each as its text.
    fn write_args(
        &self,
        read: &[(usize, i64)],
        written: &[(usize, i64)],
    ) -> (Vec<&str>, Vec<String>) {
        let (kind, from, to) = self.entry();
        let mut keys = vec![self.bank.keys.ledger.as_str()];
        let mut args = vec![
            kind.to_string(),
            self.mv.amount().get().to_string(),
            from.to_string(),
            to.to_string(),
        ];
        for &(position, balance) in written {
            let was = read
                .iter()
                .find(|(p, _)| *p == position)
                .map_or(balance, |(_, b)| *b);
            keys.push(&self.bank.keys.balances[position]);
            args.extend([
                self.spec.id(position).to_string(),
                balance.to_string(),
                was.to_string(),
            ]);
        }
        (keys, args)
    }

    /// The blind writes with their ledger entry, in one script; returns the balances written.
    async fn write(
        &self,
        read: &[(usize, i64)],
        written: &[(usize, i64)],
    ) -> Result<Vec<i64>, AccountError> {
        let (keys, args) = self.write_args(read, written);
        let mut invocation = scripts::WRITE_SCRIPT.prepare_invoke();
        invocation.key(keys).arg(args);
        let _replaced: Vec<i64> = invocation
            .invoke_async(&mut self.bank.connection.clone())
            .await
            .map_err(after_write)?;
        Ok(written.iter().map(|&(_, balance)| balance).collect())
    }
}

/// Builds the bank's ledger from its hash; a field never written is zero, and an account without
/// its opening (a replica opened it before the hash was cleared) opens as the spec says.
fn ledger_from(spec: &BankSpec, fields: &HashMap<String, i64>) -> BankLedger {
    let field = |name: &str| fields.get(name).copied().unwrap_or(0);
    let count = |name: &str| u64::try_from(field(name)).unwrap_or(0);
    // A total is `carry * 2^63 + field` (see the single account's `scripts`).
    let total =
        |name: &str| (i128::from(field(&format!("{name}_carry"))) << 63) + i128::from(field(name));
    let openings = spec.openings();
    let accounts = (0..spec.len())
        .map(|position| {
            let id = spec.id(position);
            AccountLedger {
                opening: fields
                    .get(&format!("{id}:opening"))
                    .copied()
                    .unwrap_or(openings[position]),
                credits: total(&format!("{id}:credits")),
                debits: total(&format!("{id}:debits")),
                lost_updates: count(&format!("{id}:lost_updates")),
                destroyed: total(&format!("{id}:destroyed")),
                created: total(&format!("{id}:created")),
            }
        })
        .collect();
    BankLedger {
        accounts,
        deposits: count("deposits"),
        withdrawals: count("withdrawals"),
        transfers: count("transfers"),
        transfer_sum: total("transfer_sum"),
        refused: count("refused"),
        deadlocks: count("deadlocks"),
        retries: count("retries"),
        retries_exhausted: count("retries_exhausted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_s_keys_share_the_account_s_hash_tag() {
        let spec = BankSpec::numbered(2, 10, &[]).expect("a bank");
        let keys = BankKeys::new("main", &spec);
        assert_eq!(
            keys.balances,
            [
                "racebank:{main}:bank:balance:0",
                "racebank:{main}:bank:balance:1"
            ]
        );
        assert_eq!(keys.locks[1], "racebank:{main}:bank:lock:1");
        assert_eq!(keys.ledger, "racebank:{main}:bank:ledger");
    }

    #[test]
    fn the_ledger_reads_each_account_s_fields_and_its_carries() {
        let spec = BankSpec::numbered(2, 10, &[]).expect("a bank");
        let fields = HashMap::from([
            ("0:opening".to_string(), 7),
            ("1:credits".to_string(), 5),
            ("1:credits_carry".to_string(), 1),
            ("1:destroyed".to_string(), 10),
            ("1:lost_updates".to_string(), 1),
            ("transfers".to_string(), 2),
        ]);
        let ledger = ledger_from(&spec, &fields);
        assert_eq!(ledger.accounts[0].opening, 7);
        assert_eq!(
            ledger.accounts[1].opening, 10,
            "the spec's, when the hash has none"
        );
        assert_eq!(ledger.accounts[1].credits, (1i128 << 63) + 5);
        assert_eq!(ledger.accounts[1].destroyed, 10);
        assert_eq!(ledger.accounts[1].lost_updates, 1);
        assert_eq!(ledger.transfers, 2);
    }
}
