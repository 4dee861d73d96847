//! The PostgreSQL store against the real local server, over HTTP: one replica and three.
//!
//! Each test names its own account (its name, the process id and a clock suffix), so tests run in
//! parallel on one database without seeing each other, and next to other projects' tests. Pools are
//! small (4 connections a replica): every test on this machine shares PostgreSQL's 100 connections.
//!
//! The database is `RACEBANK_TEST_DATABASE_URL`, by default the local server's `test` database.
//! If it cannot be reached every test here FAILS with one line saying how to start it: a test of
//! the PostgreSQL store that passes without PostgreSQL would prove nothing.
//!
//! The restart tests (`restart.rs`) are the exception: stopping the shared server would fail every
//! test beside them, so each starts a PostgreSQL server of its own with `initdb` and `pg_ctl`.

mod bank;
mod database;
mod keys;
mod one_replica;
mod replicas;
mod restart;

use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use racebank::{AccountConfig, AccountId, Config, Mode, StoreConfig, WorkSpec};
use reqwest::StatusCode;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use crate::helpers::{spawn_with, TestApp};

/// Connections per test replica: enough for the races these tests make, few enough that many
/// tests and other projects' test runs fit under PostgreSQL's 100 connections together.
const TEST_POOL_SIZE: usize = 4;

/// The database the tests use.
pub(crate) fn database_url() -> String {
    std::env::var("RACEBANK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Fails the test with one line if PostgreSQL is not there; checked once per test binary.
pub(crate) async fn require_postgres() {
    static REACHABLE: OnceCell<Result<(), String>> = OnceCell::const_new();
    let reachable = REACHABLE
        .get_or_init(|| async {
            let url = database_url();
            match tokio_postgres::connect(&url, NoTls).await {
                // The connection task belongs to this test's runtime; dropping it closes the probe.
                Ok(_) => Ok(()),
                Err(error) => {
                    let reason = std::error::Error::source(&error)
                        .map_or_else(|| error.to_string(), std::string::ToString::to_string);
                    Err(format!(
                        "PostgreSQL is not reachable at {url} ({reason}): start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
                    ))
                }
            }
        })
        .await;
    if let Err(line) = reachable {
        panic!("{line}");
    }
}

/// An account id of this test alone: `name`, this process and a clock suffix, at most 64 chars.
pub(crate) fn unique_account(name: &str) -> AccountId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let name: String = name.chars().take(40).collect();
    format!("{name}-{}-{nanos}", std::process::id())
        .parse()
        .expect("test account ids are valid")
}

/// The config of one replica serving `account` in `mode` with `work`.
pub(crate) fn replica_config(account: &AccountId, mode: &str, work: &str) -> Config {
    Config {
        account: AccountConfig {
            store: StoreConfig::Postgres {
                url: database_url(),
                pool_size: TEST_POOL_SIZE,
            },
            id: account.clone(),
            mode: mode.parse::<Mode>().expect("a test names a valid mode"),
            work: work.parse::<WorkSpec>().expect("a test names valid work"),
            ..AccountConfig::default()
        },
        ..Config::default()
    }
}

/// `count` servers (replicas) in this process, each with its own account, guard and pool, all
/// serving the same row of a new account that starts at `balance`.
pub(crate) async fn spawn_replicas(
    name: &str,
    count: usize,
    mode: &str,
    work: &str,
    balance: i64,
) -> (AccountId, Vec<TestApp>) {
    require_postgres().await;
    let account = unique_account(name);
    let mut replicas = Vec::with_capacity(count);
    for _ in 0..count {
        let replica = spawn_with(replica_config(&account, mode, work)).await;
        // The first answer proves the replica opened the account (and migrated the schema).
        assert_eq!(
            replica.get("/healthz").await.status(),
            StatusCode::OK,
            "replica {} of {name} did not start",
            replicas.len()
        );
        replicas.push(replica);
    }
    replicas[0].reset(balance).await;
    (account, replicas)
}

/// One replica of a new account that starts at `balance`.
pub(crate) async fn spawn_one(
    name: &str,
    mode: &str,
    work: &str,
    balance: i64,
) -> (AccountId, TestApp) {
    let (account, mut replicas) = spawn_replicas(name, 1, mode, work, balance).await;
    (account, replicas.pop().expect("one replica"))
}

/// Sends one change to each replica in turn (`changes[i]` to replica `i % n`), all at once.
/// Positive: a deposit; negative: a withdrawal. Returns the statuses in order.
pub(crate) async fn across(replicas: &[TestApp], changes: &[i64]) -> Vec<StatusCode> {
    let requests = changes.iter().enumerate().map(|(i, &change)| {
        let replica = &replicas[i % replicas.len()];
        async move {
            if change >= 0 {
                replica.deposit(change).await.status()
            } else {
                replica.withdraw(-change).await.status()
            }
        }
    });
    join_all(requests).await
}

/// A direct connection to the test database, to look at the rows behind the API.
pub(crate) async fn sql() -> tokio_postgres::Client {
    require_postgres().await;
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// What the database holds for an account: its row and every ledger shard, as text, so a test can
/// say "nothing changed" about all of it at once.
pub(crate) async fn account_rows(
    client: &tokio_postgres::Client,
    account: &str,
) -> (String, String) {
    let row = client
        .query_one(
            "SELECT a::text,
                    coalesce((SELECT string_agg(l::text, ';' ORDER BY l.shard)
                              FROM racebank.ledger l WHERE l.account = a.id), '')
             FROM racebank.accounts a WHERE a.id = $1",
            &[&account],
        )
        .await
        .expect("the account's row exists");
    (row.get(0), row.get(1))
}

/// The balance in the account's row, read directly.
pub(crate) async fn row_balance(account: &str) -> i64 {
    row_balance_on(&sql().await, account).await
}

/// The balance in the account's row, read directly on `client`.
pub(crate) async fn row_balance_on(client: &tokio_postgres::Client, account: &str) -> i64 {
    client
        .query_one(
            "SELECT balance FROM racebank.accounts WHERE id = $1",
            &[&account],
        )
        .await
        .expect("the account's row exists")
        .get(0)
}
