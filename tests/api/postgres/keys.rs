//! The idempotency table in PostgreSQL: expired keys do not pile up.

use std::time::{Duration, Instant};

use super::{spawn_one, sql};
use crate::idempotency::keyed;

/// Keys left behind, expired, before the test starts: far more than one purge batch.
const BACKLOG: i64 = 20_000;

#[tokio::test]
async fn a_backlog_of_expired_keys_is_worked_off_while_the_server_runs() {
    let (account, app) = spawn_one("keys-backlog", "atomic", "none", 0).await;
    let sql = sql().await;
    sql.execute(
        "INSERT INTO racebank.idempotency (account, key, kind, amount, status, balance, expires_at)
         SELECT $1, 'old-' || i, 'deposit', 1, 200, 1, now() - interval '1 hour'
         FROM generate_series(1, $2::int8) AS i",
        &[&account.as_str(), &BACKLOG],
    )
    .await
    .expect("the backlog is inserted");
    let expired = || async {
        let row = sql
            .query_one(
                "SELECT count(*) FROM racebank.idempotency
                 WHERE account = $1 AND expires_at <= now()",
                &[&account.as_str()],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    assert_eq!(expired().await, BACKLOG);

    // Traffic with keys, as a running server sees: each request looks its key up and keeps it.
    let started = Instant::now();
    let mut sent = 0;
    while expired().await > 0 && started.elapsed() < Duration::from_secs(10) {
        keyed(&app, "/deposit", 1, &format!("new-{sent}")).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        expired().await,
        0,
        "{sent} keyed requests in {:?} did not work off the backlog",
        started.elapsed()
    );
    let live: i64 = sql
        .query_one(
            "SELECT count(*) FROM racebank.idempotency WHERE account = $1",
            &[&account.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, sent, "every live key is kept");
}
