//! What the PostgreSQL store does to the database itself: opening, migrating, refusing.

use futures::future::join_all;
use racebank::{AccountConfig, Config, Mode, ServeError, StoreConfig};
use reqwest::StatusCode;
use tokio_postgres::NoTls;

use super::{account_rows, database_url, replica_config, spawn_one, sql, unique_account};
use crate::helpers::{amount_body, spawn_with};

/// Every mode of the PostgreSQL store: the paths to a refusal differ (a rolled-back transaction, a
/// redo loop, an UPDATE that matched nothing), the outcome must not.
const MODES: [&str; 9] = [
    "unguarded",
    "mutex",
    "semaphore:2",
    "for-update",
    "advisory",
    "optimistic",
    "repeatable-read",
    "serializable",
    "atomic",
];

#[tokio::test]
async fn bad_input_and_refusals_change_nothing_in_the_database_in_any_mode() {
    let database = sql().await;
    let json = Some("application/json");
    let cases: [(&str, Option<&str>, String, StatusCode); 6] = [
        (
            "/deposit",
            json,
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/deposit",
            json,
            amount_body(-5),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/withdraw",
            json,
            r#"{"amount": 5.5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/withdraw",
            None,
            amount_body(5),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("/deposit", json, "amount=5".into(), StatusCode::BAD_REQUEST),
        // A deposit that would overflow the balance: refused by the store's own check.
        (
            "/deposit",
            json,
            amount_body(i64::MAX),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for mode in MODES {
        let name = format!("pg-bad-input-{mode}").replace(':', "-");
        let (account, app) = spawn_one(&name, mode, "none", 100).await;
        app.deposit(20).await;
        let before = account_rows(&database, account.as_str()).await;

        for (path, content_type, body, status) in &cases {
            let response = app.post_raw(path, *content_type, body).await;
            assert_eq!(response.status(), *status, "{mode}: {path} {body}");
        }
        let refused = app.withdraw(1000).await;

        assert_eq!(refused.status(), StatusCode::CONFLICT, "{mode}");
        let (row, ledger) = account_rows(&database, account.as_str()).await;
        assert_eq!(
            row, before.0,
            "{mode}: bad input or a refusal touched the row"
        );
        let stats = app.stats().await;
        assert_eq!(
            (
                stats.balance,
                stats.deposit_count,
                stats.withdrawal_count,
                stats.refused_count
            ),
            (120, 1, 0, 1),
            "{mode}: the ledger counts one deposit and one refusal, nothing else ({ledger})"
        );
        assert_eq!((stats.lost_updates, stats.retries), (0, 0), "{mode}");
    }
}

#[tokio::test]
async fn a_replica_joining_a_running_account_keeps_its_balance() {
    let (account, first) = spawn_one("pg-join", "atomic", "none", 100).await;
    first.deposit(5).await;

    // The second replica asks for an opening balance of 0: the account exists, so it is ignored.
    let mut config = replica_config(&account, "atomic", "none");
    config.account.initial_balance = 0;
    let second = spawn_with(config).await;

    assert_eq!(second.balance().await, 105);
    assert_eq!(second.stats().await, first.stats().await);
}

#[tokio::test]
async fn replicas_starting_at_once_on_an_empty_database_migrate_it_exactly_once() {
    let admin = sql().await;
    let name = format!("racebank_migrate_{}", std::process::id());
    // Two statements, not one batch: a batch is one transaction, and these refuse to run in one.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("create a scratch database");
    }
    let url = database_url().rsplit_once('/').unwrap().0.to_string() + "/" + &name;
    let account = unique_account("pg-migrate");
    let config = |pool_size| Config {
        account: AccountConfig {
            store: StoreConfig::Postgres {
                url: url.clone(),
                pool_size,
            },
            id: account.clone(),
            mode: Mode::Atomic,
            ..AccountConfig::default()
        },
        ..Config::default()
    };

    let replicas = join_all((0..3).map(|_| spawn_with(config(2)))).await;
    let started = join_all(replicas.iter().map(|replica| replica.get("/healthz"))).await;

    assert!(started
        .iter()
        .all(|answer| answer.status() == StatusCode::OK));
    let (scratch, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let migrations: i64 = scratch
        .query_one("SELECT count(*) FROM racebank.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    // Every migration in src/store/postgres/migrations/, each applied once.
    assert_eq!(migrations, 4);
    drop(scratch);
    let _ = connection.await;
    for replica in replicas {
        replica.shutdown().await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop the scratch database");
}

/// The line a server refuses to start with when its store is `url`.
async fn open_error(url: &str) -> String {
    let mut config = replica_config(&unique_account("pg-open"), "atomic", "none");
    config.account.store = StoreConfig::Postgres {
        url: url.into(),
        pool_size: 1,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let outcome = racebank::serve(listener, config, std::future::pending()).await;

    let Err(ServeError::Open(error)) = outcome else {
        panic!("the server must not start on {url}: {outcome:?}");
    };
    let line = error.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    line
}

#[tokio::test]
async fn a_url_on_a_port_where_nothing_listens_is_told_to_check_the_port_not_to_start_postgres() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let line = open_error("postgres://postgres@127.0.0.1:1/test").await;

    assert!(line.contains("nothing listens on port 1"), "{line}");
    assert!(line.contains("5432"), "names the usual port: {line}");
    assert!(!line.contains("pg_ctlcluster"), "{line}");
}

#[tokio::test]
async fn an_unknown_role_is_told_to_use_a_known_role_or_create_it() {
    super::require_postgres().await;
    let line = open_error("postgres://no_such_racebank_role@127.0.0.1:5432/test").await;

    assert!(line.contains("no_such_racebank_role"), "{line}");
    assert!(
        line.contains("createuser -h 127.0.0.1 -p 5432 -U postgres no_such_racebank_role"),
        "{line}"
    );
    assert!(!line.contains("pg_ctlcluster"), "{line}");
}

#[tokio::test]
async fn a_missing_database_is_told_to_create_it() {
    super::require_postgres().await;
    let line = open_error("postgres://postgres@127.0.0.1:5432/no_such_racebank_db").await;

    assert!(
        line.contains("database `no_such_racebank_db` does not exist"),
        "{line}"
    );
    assert!(
        line.contains("createdb -h 127.0.0.1 -p 5432 -U postgres no_such_racebank_db"),
        "{line}"
    );
    assert!(!line.contains("pg_ctlcluster"), "{line}");
}

#[tokio::test]
async fn a_mode_of_another_store_is_refused_at_start() {
    super::require_postgres().await;
    let config = replica_config(&unique_account("pg-lease"), "lease", "none");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let outcome = racebank::serve(listener, config, std::future::pending()).await;

    assert!(
        matches!(&outcome, Err(ServeError::Open(error)) if error.to_string().contains("postgres")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_pool_of_one_connection_hides_the_race() {
    // Unguarded, yet the second request cannot read before the first has written: it is waiting
    // for the only connection. The first waits its full second at the rendezvous alone.
    let account = unique_account("pg-pool-of-one");
    let mut config = replica_config(&account, "unguarded", "rendezvous:2");
    config.account.store = StoreConfig::Postgres {
        url: database_url(),
        pool_size: 1,
    };
    super::require_postgres().await;
    let app = spawn_with(config).await;
    app.reset(0).await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.lost_updates), (10, 0));
}

#[tokio::test]
async fn a_connection_lost_before_the_write_answers_503_and_writes_nothing() {
    // advisory mode, so the request's backend is findable: it holds the account's advisory lock
    // (key 29282, hashtext(account)) for the whole section, work included.
    let (account, app) = spawn_one("pg-lost-connection", "advisory", "2s", 100).await;
    let database = sql().await;
    let before = account_rows(&database, account.as_str()).await;

    let deposit = app.deposit(5);
    let terminate = async {
        // Poll until the request is inside its section, then end its connection from the server.
        for _ in 0..200 {
            let terminated: i64 = database
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
                     WHERE locktype = 'advisory' AND classid = 29282 AND granted
                       AND objid = (hashtext($1)::bigint & 4294967295)::oid",
                    &[&account.as_str()],
                )
                .await
                .unwrap()
                .get(0);
            if terminated > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the deposit never took the advisory lock");
    };
    let (response, ()) = tokio::join!(deposit, terminate);

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:racebank:problem:store-unavailable");
    assert_eq!(
        account_rows(&database, account.as_str()).await,
        before,
        "the cut-off request wrote nothing"
    );
    // The pool recovers by itself. It drops a connection it knows is closed before handing it
    // out; one whose end it has not yet seen fails the next request that uses it (503, nothing
    // written, seen once in many runs on a loaded machine), and the request after gets a new one.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let status = app.deposit(5).await.status();
        statuses.push(status);
        if status == StatusCode::OK {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&StatusCode::OK), "{statuses:?}");
    assert!(
        statuses[..statuses.len() - 1]
            .iter()
            .all(|status| *status == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    assert_eq!(app.balance().await, 105);
}
