//! The Redis store against the real local Redis, over HTTP: one test per row of the modes table.
//!
//! Each test has its own account (its name, this process's id and a counter), so tests run in
//! parallel and beside other runs without meeting, and deletes its keys when it passes. If Redis is
//! not reachable every test fails with one line saying how to start it.
//!
//! Replicas are several servers in this process sharing one account id: each has its own
//! in-process guard and its own connections, exactly as separate processes would.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use racebank::START_REDIS;
use racebank::{AccountConfig, AccountId, Config, Mode, OpenError, ServeError, StoreConfig};
use redis::aio::MultiplexedConnection;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_ledger_explains_balance, mixed_changes, spawn_with, TestApp};

/// The Redis the tests use: `REDIS_URL`, or the local server.
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| racebank::DEFAULT_REDIS_URL.to_string())
}

/// One test's account: its id, its servers' configuration, and a direct connection to look at
/// its keys.
pub(crate) struct TestAccount {
    id: AccountId,
    redis: MultiplexedConnection,
}

impl TestAccount {
    /// A fresh account for the test `name` (keep it short: ids are at most 64 characters).
    pub(crate) async fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = redis_url();
        let unreachable = |error: redis::RedisError| -> ! {
            panic!("Redis is not reachable at {url} ({error}); start it with: {START_REDIS}")
        };
        let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| unreachable(e));
        let mut redis = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| unreachable(e));
        let _: String = redis::cmd("PING")
            .query_async(&mut redis)
            .await
            .unwrap_or_else(|e| unreachable(e));
        Self {
            id: id.parse().expect("a valid account id"),
            redis,
        }
    }

    /// The account's id.
    pub(crate) fn id(&self) -> AccountId {
        self.id.clone()
    }

    /// The test's own connection to Redis, to look at or set keys beside the servers.
    pub(crate) fn redis(&self) -> MultiplexedConnection {
        self.redis.clone()
    }

    /// A server configuration for this account.
    pub(crate) fn config(&self, mode: &str, work: &str, lease_ms: u64) -> Config {
        Config {
            account: AccountConfig {
                store: StoreConfig::Redis { url: redis_url() },
                id: self.id.clone(),
                mode: mode.parse().expect("a test names a valid mode"),
                work: work.parse().expect("a test names valid work"),
                initial_balance: 0,
                lease: Duration::from_millis(lease_ms),
                // Long enough for any test, short enough that the idempotency keys a test leaves
                // behind (`delete` removes only the account's own keys) do not stay for long.
                idempotency_ttl: Duration::from_secs(60),
                ..AccountConfig::default()
            },
            ..Config::default()
        }
    }

    /// `replicas` servers sharing this account.
    pub(crate) async fn replicas(
        &self,
        count: usize,
        mode: &str,
        work: &str,
        lease_ms: u64,
    ) -> Vec<TestApp> {
        let mut apps = Vec::new();
        for _ in 0..count {
            let app = spawn_with(self.config(mode, work, lease_ms)).await;
            // The server opens its account before it answers: wait until it does.
            assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
            apps.push(app);
        }
        apps
    }

    fn keys(&self) -> Vec<String> {
        [
            "balance",
            "ledger",
            "lock",
            "fence",
            "seen",
            "generation",
            "writes",
            "halted",
        ]
        .iter()
        .map(|name| format!("racebank:{{{}}}:{name}", self.id))
        .collect()
    }

    /// Every key of the account, serialised (`DUMP`): equal snapshots mean nothing changed.
    async fn snapshot(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut snapshot = Vec::new();
        for key in self.keys() {
            let dump: Option<Vec<u8>> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut self.redis.clone())
                .await
                .unwrap();
            snapshot.push((key, dump));
        }
        snapshot
    }

    /// Whether someone holds the account's lease now.
    async fn lock_is_held(&self) -> bool {
        let held: bool = redis::cmd("EXISTS")
            .arg(&self.keys()[2])
            .query_async(&mut self.redis.clone())
            .await
            .unwrap();
        held
    }

    /// Deletes the account's balance key, as a Redis that lost it would.
    pub(crate) async fn delete_balance(&self) {
        let _: i64 = redis::cmd("DEL")
            .arg(&self.keys()[0])
            .query_async(&mut self.redis.clone())
            .await
            .unwrap();
    }

    /// Deletes the account's keys.
    pub(crate) async fn delete(self) {
        let mut redis = self.redis.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.keys())
            .query_async(&mut redis)
            .await
            .unwrap();
    }
}

/// Sends change `i` (positive: deposit, negative: withdrawal) to replica `i % replicas`, all at
/// once; returns each change with its status.
async fn across(replicas: &[TestApp], changes: &[i64]) -> Vec<(i64, StatusCode)> {
    let requests = changes.iter().enumerate().map(|(i, &change)| async move {
        let app = &replicas[i % replicas.len()];
        let response = if change >= 0 {
            app.deposit(change).await
        } else {
            app.withdraw(-change).await
        };
        (change, response.status())
    });
    join_all(requests).await
}

/// Runs mixed concurrent load on three replicas and checks that nothing was lost: the final
/// balance is what the acknowledged answers add up to, and the account-wide ledger agrees.
async fn three_replicas_lose_nothing(mode: &str, work: &str, lease_ms: u64) {
    let account = TestAccount::new(mode).await;
    let replicas = account.replicas(3, mode, work, lease_ms).await;
    replicas[0].reset(500).await;
    let changes = mixed_changes(60);

    let answers = across(&replicas, &changes).await;

    let acknowledged: i64 = answers
        .iter()
        .filter(|(_, status)| *status == StatusCode::OK)
        .map(|(change, _)| change)
        .sum();
    for (change, status) in &answers {
        assert!(
            [StatusCode::OK, StatusCode::CONFLICT].contains(status),
            "{mode}: {change} answered {status}"
        );
    }
    let stats = replicas[2].stats().await;
    assert_eq!(stats.store, "redis");
    assert_eq!(stats.balance, 500 + acknowledged, "{mode}: {stats:?}");
    assert_eq!(stats.lost_updates, 0, "{mode}: {stats:?}");
    assert_eq!(
        stats.deposit_count + stats.withdrawal_count + stats.refused_count,
        60,
        "{mode}: every request is counted once, account-wide: {stats:?}"
    );
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_unguarded_two_deposits_at_a_rendezvous_lose_exactly_one() {
    let account = TestAccount::new("unguarded").await;
    let app = spawn_with(account.config("unguarded", "rendezvous:2", 100)).await;

    let statuses = app.concurrently(&[5, 5]).await;

    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 10));
    assert_eq!((stats.lost_updates, stats.lost_net), (1, 5));
    assert_eq!((stats.lost_removed, stats.lost_added), (5, 0));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_mutex_on_one_replica_keeps_every_deposit() {
    let account = TestAccount::new("mutex1").await;
    let app = spawn_with(account.config("mutex", "1ms", 100)).await;

    let statuses = app.concurrently(&[5; 20]).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.lost_updates), (100, 0));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_mutex_across_three_replicas_loses_two_of_three_deposits() {
    // Each replica's mutex admits its own request, so all three read 0, and each writes 5. Exact as
    // long as the three requests, sent together, all read within 300 ms of the first: on loopback
    // they start within a few milliseconds of each other, a margin of about a hundred times.
    let account = TestAccount::new("mutex3").await;
    let replicas = account.replicas(3, "mutex", "300ms", 100).await;

    let answers = across(&replicas, &[5, 5, 5]).await;

    assert!(
        answers.iter().all(|(_, s)| *s == StatusCode::OK),
        "{answers:?}"
    );
    let stats = replicas[0].stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 15));
    assert_eq!((stats.lost_updates, stats.lost_net), (2, 10));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_optimistic_across_three_replicas_loses_nothing() {
    three_replicas_lose_nothing("optimistic", "1ms", 100).await;
}

#[tokio::test]
async fn redis_atomic_across_three_replicas_loses_nothing() {
    three_replicas_lose_nothing("atomic", "1ms", 100).await;
}

#[tokio::test]
async fn redis_fenced_across_three_replicas_loses_nothing() {
    // The work (1 ms) ends long before the lease (2 s), so no lease runs out and every request is
    // answered 200 or 409; the next test covers a lease that does run out.
    three_replicas_lose_nothing("fenced", "1ms", 2000).await;
}

#[tokio::test]
async fn redis_lease_longer_than_the_work_is_safe_across_three_replicas() {
    three_replicas_lose_nothing("lease", "1ms", 2000).await;
}

#[tokio::test]
async fn redis_lease_that_runs_out_during_the_work_lets_a_second_holder_in_and_loses_one() {
    // The first deposit takes the lock, reads 0 and waits at the rendezvous. Its 50 ms lease runs
    // out; the second takes the lock, reads 0 too, and meets it there. Both write 5: one is lost.
    // Exact: the rendezvous releases only once both have read.
    let account = TestAccount::new("lease-rdv").await;
    let app = spawn_with(account.config("lease", "rendezvous:2", 50)).await;

    let statuses = app.concurrently(&[5, 5]).await;

    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 10));
    assert_eq!((stats.lost_updates, stats.lost_net), (1, 5));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_lease_of_50ms_with_200ms_of_work_loses_the_first_deposit_every_time() {
    // The README's two curls: the second holder reads 0 while the first, its lease gone, still
    // works; both write 5.
    let account = TestAccount::new("lease-200").await;
    let app = spawn_with(account.config("lease", "200ms", 50)).await;

    let (first, second) = second_deposit_once_the_first_holds_the_lock(&account, &app).await;

    for response in [first, second] {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["balance"], 5, "both read 0 and wrote 5");
    }
    let stats = app.stats().await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.lost_net),
        (5, 1, 5)
    );
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

/// Sends a deposit of 5, and a second one as soon as the first holds the lease.
///
/// With `--work 200ms --lease 50ms` the order is fixed: the first's lease runs out 50 ms after it
/// took it; the second takes it within a few ms more (its poll backs off to 8 ms at most) and
/// reads, while the first still works until 200 ms (a margin of over 100 ms); the first writes at
/// 200 ms, the second at 250 ms or later (a margin of 50 ms).
async fn second_deposit_once_the_first_holds_the_lock(
    account: &TestAccount,
    app: &TestApp,
) -> (reqwest::Response, reqwest::Response) {
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let first = app.deposit(5);
    let second = async {
        while !account.lock_is_held().await {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        app.deposit(5).await
    };
    tokio::join!(first, second)
}

#[tokio::test]
async fn redis_fenced_refuses_the_stale_holder_with_503_and_loses_nothing() {
    // As in the lease test, the second holder reads while the first, its lease gone, waits. The
    // storage has now seen the second's newer token, so the first's write is refused.
    let account = TestAccount::new("fenced-rdv").await;
    let app = spawn_with(account.config("fenced", "rendezvous:2", 50)).await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    let (refused, written) = if first.status() == StatusCode::OK {
        (second, first)
    } else {
        (first, second)
    };
    assert_eq!(written.status(), StatusCode::OK);
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:racebank:problem:lease-lost");
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 5));
    assert_eq!((stats.deposit_count, stats.lost_updates), (1, 0));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_fenced_write_only_lets_the_stale_holder_write_first_and_loses_one() {
    // The token is checked only at the write. The stale holder writes first (at 200 ms, when no
    // newer token has been written yet), then the new holder, who read 0 before that, writes over
    // it. (Were the new holder to write first, the stale write would be refused: the loss needs
    // this order, which the 200 ms of work with a 50 ms lease fixes.)
    let account = TestAccount::new("write-only").await;
    let app = spawn_with(account.config("fenced-write-only", "200ms", 50)).await;

    let (first, second) = second_deposit_once_the_first_holds_the_lock(&account, &app).await;

    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 10));
    assert_eq!((stats.lost_updates, stats.lost_net), (1, 5));
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_fenced_with_200ms_of_work_and_a_50ms_lease_refuses_the_stale_write() {
    // The same order as above; the read check has recorded the new holder's token, so the stale
    // holder's write at 200 ms is refused and the new holder's lands.
    let account = TestAccount::new("fenced-200").await;
    let app = spawn_with(account.config("fenced", "200ms", 50)).await;

    let (first, second) = second_deposit_once_the_first_holds_the_lock(&account, &app).await;

    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.status(), StatusCode::OK);
    let stats = app.stats().await;
    assert_eq!(
        (stats.balance, stats.deposit_count, stats.lost_updates),
        (5, 1, 0)
    );
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_atomic_refuses_inside_the_script_what_the_balance_cannot_cover() {
    let account = TestAccount::new("atomic-refuse").await;
    let app = spawn_with(account.config("atomic", "1ms", 100)).await;
    app.reset(100).await;

    let statuses = app.concurrently(&[-10; 30]).await;

    let paid = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((paid, refused), (10, 20), "{statuses:?}");
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.refused_count), (0, 20));
    assert!(!stats.overdraft);
    assert_ledger_explains_balance(&stats);
    account.delete().await;
}

#[tokio::test]
async fn redis_lease_refuses_a_withdrawal_on_the_balance_it_read() {
    let account = TestAccount::new("lease-refuse").await;
    let app = spawn_with(account.config("lease", "1ms", 1000)).await;
    app.reset(100).await;

    let response = app.withdraw(101).await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        (problem["balance"].as_i64(), problem["amount"].as_i64()),
        (Some(100), Some(101))
    );
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.refused_count), (100, 1));
    assert!(
        !account.lock_is_held().await,
        "the lease is released after a refusal"
    );
    account.delete().await;
}

#[tokio::test]
async fn redis_deposits_that_would_overflow_are_refused_and_sums_past_i64_stay_exact() {
    let account = TestAccount::new("big").await;
    for mode in ["atomic", "unguarded"] {
        let app = spawn_with(account.config(mode, "none", 100)).await;
        app.reset(0).await;
        // Three deposits of i64::MAX with the balance emptied in between: the deposit total passes
        // i64::MAX, and the ledger must carry it rather than fail or wrap.
        for _ in 0..3 {
            assert_eq!(
                app.deposit(i64::MAX).await.status(),
                StatusCode::OK,
                "{mode}"
            );
            assert_eq!(
                app.deposit(1).await.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{mode}"
            );
            assert_eq!(
                app.withdraw(i64::MAX).await.status(),
                StatusCode::OK,
                "{mode}"
            );
        }

        let stats = app.stats().await;
        assert_eq!(stats.deposit_sum, 3 * i128::from(i64::MAX), "{mode}");
        assert_eq!(stats.withdrawal_sum, 3 * i128::from(i64::MAX), "{mode}");
        assert_eq!((stats.balance, stats.deposit_count), (0, 3), "{mode}");
        assert_ledger_explains_balance(&stats);
    }
    account.delete().await;
}

#[tokio::test]
async fn redis_reset_on_one_replica_resets_the_account_for_every_replica() {
    let account = TestAccount::new("reset").await;
    let replicas = account.replicas(2, "atomic", "none", 100).await;
    assert_eq!(replicas[0].deposit(7).await.status(), StatusCode::OK);

    replicas[1].reset(42).await;

    let stats = replicas[0].stats().await;
    assert_eq!((stats.balance, stats.initial_balance), (42, 42));
    assert_eq!((stats.deposit_count, stats.deposit_sum), (0, 0));
    account.delete().await;
}

#[tokio::test]
async fn redis_a_replica_that_starts_later_joins_the_running_account_without_resetting_it() {
    let account = TestAccount::new("join").await;
    let first = spawn_with(account.config("atomic", "none", 100)).await;
    assert_eq!(first.deposit(7).await.status(), StatusCode::OK);
    let mut later = account.config("atomic", "none", 100);
    later.account.initial_balance = 1000;

    let second = spawn_with(later).await;

    let stats = second.stats().await;
    assert_eq!((stats.balance, stats.deposit_count), (7, 1));
    account.delete().await;
}

#[tokio::test]
async fn redis_bad_input_changes_nothing_in_redis() {
    const JSON: Option<&str> = Some("application/json");
    let account = TestAccount::new("bad-input").await;
    for mode in ["unguarded", "optimistic", "atomic", "lease", "fenced"] {
        let app = spawn_with(account.config(mode, "none", 1000)).await;
        app.reset(1000).await;
        let before = account.snapshot().await;
        let cases = [
            ("/deposit", JSON, "", 400),
            ("/deposit", JSON, "amount=5", 400),
            ("/withdraw", None, r#"{"amount": 5}"#, 415),
            ("/deposit", JSON, r#"{"amount": 0}"#, 422),
            ("/withdraw", JSON, r#"{"amount": -5}"#, 422),
            ("/deposit", JSON, r#"{"amount": 5.5}"#, 422),
            ("/deposit", JSON, r#"{"amount": "5"}"#, 422),
            ("/deposit", JSON, r#"{"amount": 99999999999999999999}"#, 422),
            ("/reset", JSON, r#"{"balance": -1}"#, 422),
            ("/nowhere", JSON, r#"{"amount": 5}"#, 404),
        ];
        for (path, content_type, body, status) in cases {
            let response = app.post_raw(path, content_type, body).await;
            assert_eq!(response.status().as_u16(), status, "{mode} {path} {body}");
        }
        let too_large = format!(r#"{{"amount": 5, "padding": "{}"}}"#, "x".repeat(5000));
        let response = app.post_raw("/deposit", JSON, &too_large).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{mode}");

        assert_eq!(account.snapshot().await, before, "{mode}: a key changed");
    }
    account.delete().await;
}

#[tokio::test]
async fn redis_store_refuses_the_postgres_modes_at_start() {
    let account = TestAccount::new("pg-mode").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let outcome = racebank::serve(listener, account.config("for-update", "none", 100), async {
    })
    .await;

    match outcome {
        Err(ServeError::Open(OpenError::UnsupportedMode { store, .. })) => {
            assert_eq!(store, "redis");
        }
        other => panic!("expected the mode to be refused, got {other:?}"),
    }
    account.delete().await;
}

#[tokio::test]
async fn a_server_whose_redis_is_unreachable_fails_to_start_with_one_line_saying_how_to_start_it_on_the_urls_port(
) {
    let mut config = Config::default();
    config.account.mode = Mode::Atomic;
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    config.account.store = StoreConfig::Redis {
        url: "redis://127.0.0.1:1".into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let outcome = racebank::serve(listener, config, async {}).await;

    let Err(ServeError::Open(OpenError::Store(message))) = outcome else {
        panic!("expected an open error, got {outcome:?}");
    };
    assert!(message.contains(&racebank::start_redis(1)), "{message}");
    assert!(
        message.contains("--port 1 "),
        "starts Redis where the URL points: {message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

#[tokio::test]
async fn the_live_page_of_one_replica_shows_what_another_replica_did() {
    let account = TestAccount::new("live").await;
    let apps = account.replicas(2, "unguarded", "rendezvous:2", 100).await;
    let mut events = crate::live::Events::open(&apps[1]).await;
    assert_eq!(events.next().await.unwrap().event, "hello");

    // Two deposits meet at the first replica's rendezvous: one is lost.
    let statuses = apps[0].concurrently(&[5, 5]).await;

    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    let frame = events
        .until(|frame| frame.event == "stats" && frame.data["stats"]["deposit_count"] == 2)
        .await;
    let stats = &frame.data["stats"];
    assert_eq!(
        (&stats["balance"], &stats["expected_balance"]),
        (&5.into(), &10.into())
    );
    assert_eq!(stats["lost_updates"], 1);
    account.delete().await;
}
