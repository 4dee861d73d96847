//! `Idempotency-Key` on `/deposit` and `/withdraw`, in every store: a repeat replays the first
//! answer and changes nothing, another request with the key is refused, concurrent duplicates
//! apply once. One scenario ([`keys_apply_once`]) runs against each store and several modes; the
//! PostgreSQL and Redis runs spread the requests over replicas sharing the account.

use std::time::Duration;

use futures::future::join_all;
use racebank::{AccountConfig, Config, Mode, WorkSpec};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{amount_body, assert_ledger_explains_balance, spawn_with, TestApp};

/// One keyed request's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub replayed: bool,
    pub body: Value,
}

/// `POST path {"amount": amount}` with `Idempotency-Key: key`.
pub(crate) async fn keyed(app: &TestApp, path: &str, amount: i64, key: &str) -> Answer {
    let response = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(amount_body(amount))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true");
    let body = response.json().await.expect("a JSON answer");
    Answer {
        status,
        replayed,
        body,
    }
}

fn problem_type(answer: &Answer) -> &str {
    answer.body["type"].as_str().unwrap_or("")
}

/// The whole contract, against `apps` (replicas of one account that starts at 0); each step
/// sends its repeat to the next replica, as a client retrying through a load balancer would.
pub(crate) async fn keys_apply_once(apps: &[TestApp]) {
    let app = |i: usize| &apps[i % apps.len()];
    assert_eq!(app(0).balance().await, 0);

    // The first request with a key applies; its repeat replays the answer and changes nothing.
    let first = keyed(app(0), "/deposit", 100, "pay-1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.replayed);
    assert_eq!(first.body["balance"], 100);
    let repeat = keyed(app(1), "/deposit", 100, "pay-1").await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert!(repeat.replayed, "a repeat is marked as replayed");
    assert_eq!(repeat.body, first.body);
    assert_eq!(app(2).balance().await, 100, "the repeat paid nothing");

    // The same key for another request: 422, nothing changed.
    for (path, amount) in [("/deposit", 50), ("/withdraw", 100)] {
        let reused = keyed(app(0), path, amount, "pay-1").await;
        assert_eq!(
            reused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {amount}"
        );
        assert_eq!(
            problem_type(&reused),
            "urn:racebank:problem:idempotency-key-reused"
        );
        assert!(!reused.replayed);
    }
    assert_eq!(app(1).balance().await, 100);

    // A refusal is an answer too: its repeat replays the same 409, even once funds arrived.
    let refused = keyed(app(0), "/withdraw", 500, "pay-2").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        problem_type(&refused),
        "urn:racebank:problem:insufficient-funds"
    );
    assert_eq!(app(1).deposit(1000).await.status(), StatusCode::OK);
    let refused_again = keyed(app(1), "/withdraw", 500, "pay-2").await;
    assert!(refused_again.replayed);
    assert_eq!(refused_again.status, StatusCode::CONFLICT);
    assert_eq!(refused_again.body, refused.body);
    assert_eq!(app(2).balance().await, 1100);

    // Twelve copies of one request at once, over every replica: one applies, all get its answer.
    // (Twelve: with three PostgreSQL replicas of four pooled connections each, no copy waits for
    // a connection, which on a loaded machine could outlast the pool's 5 s wait and answer 503.)
    let copies = (0..12).map(|i| keyed(app(i), "/deposit", 7, "pay-3"));
    let answers = join_all(copies).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.body, answers[0].body);
    }
    let fresh = answers.iter().filter(|answer| !answer.replayed).count();
    assert_eq!(fresh, 1, "exactly one copy applied: {answers:?}");
    assert_eq!(app(0).balance().await, 1107);

    // A bad key is refused before anything happens.
    for bad in ["", &"k".repeat(256)] {
        let answer = keyed(app(0), "/deposit", 1, bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(
            problem_type(&answer),
            "urn:racebank:problem:invalid-idempotency-key"
        );
    }

    let stats = app(0).stats().await;
    assert_eq!(app(0).balance().await, 1107);
    assert_eq!(stats.deposit_count, 3, "100, 1000 and 7, once each");
    assert_eq!(stats.withdrawal_count, 0);
    assert_ledger_explains_balance(&stats);
}

fn memory(mode: &str, work: &str) -> Config {
    Config {
        account: AccountConfig::memory(
            mode.parse::<Mode>().expect("a valid mode"),
            work.parse::<WorkSpec>().expect("valid work"),
        ),
        ..Config::default()
    }
}

#[tokio::test]
async fn memory_keys_apply_once_in_every_mode() {
    for mode in ["unguarded", "mutex", "optimistic", "atomic"] {
        let app = spawn_with(memory(mode, "1ms")).await;
        keys_apply_once(std::slice::from_ref(&app)).await;
    }
}

#[tokio::test]
async fn a_key_is_free_again_once_it_expired() {
    let mut config = memory("atomic", "none");
    config.account.idempotency_ttl = Duration::from_millis(20);
    let app = spawn_with(config).await;
    assert!(!keyed(&app, "/deposit", 5, "k").await.replayed);
    // Well past the 20 ms the key is kept: the same key is a new request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = keyed(&app, "/deposit", 5, "k").await;
    assert!(!again.replayed);
    assert_eq!(app.balance().await, 10);
}

/// After a reset every key is free: a deposit's and a refusal's keys apply anew, and their new
/// answers are kept in turn. Each step goes to the next replica where there are several.
async fn a_reset_forgets_every_key(apps: &[TestApp]) {
    let app = |i: usize| &apps[i % apps.len()];
    app(0).reset(0).await;
    assert_eq!(
        keyed(app(0), "/deposit", 5, "paid").await.status,
        StatusCode::OK
    );
    let refused = keyed(app(1), "/withdraw", 50, "refused").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);

    app(0).reset(100).await;
    let paid = keyed(app(1), "/deposit", 5, "paid").await;
    assert_eq!((paid.status, paid.replayed), (StatusCode::OK, false));
    assert_eq!(paid.body["balance"], 105);
    let withdrawn = keyed(app(0), "/withdraw", 50, "refused").await;
    assert_eq!(
        (withdrawn.status, withdrawn.replayed),
        (StatusCode::OK, false)
    );
    assert_eq!(withdrawn.body["balance"], 55);
    let replay = keyed(app(1), "/deposit", 5, "paid").await;
    assert_eq!((replay.replayed, &replay.body), (true, &paid.body));
    assert_eq!(app(0).balance().await, 55);
}

#[tokio::test]
async fn a_reset_forgets_every_key_in_memory() {
    a_reset_forgets_every_key(&[spawn_with(memory("atomic", "none")).await]).await;
}

#[tokio::test]
async fn a_reset_forgets_every_key_in_postgres() {
    let (_, replicas) = crate::postgres::spawn_replicas("reset-keys", 2, "atomic", "none", 0).await;
    a_reset_forgets_every_key(&replicas).await;
}

#[tokio::test]
async fn a_reset_forgets_every_key_in_redis() {
    a_reset_forgets_every_key(&redis_replicas("reset-keys", "atomic", 2).await).await;
}

#[tokio::test]
async fn requests_without_a_key_are_unchanged() {
    let app = spawn_with(memory("atomic", "none")).await;
    let response = app.deposit(5).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.deposit(5).await.status(), StatusCode::OK);
    assert_eq!(
        app.balance().await,
        10,
        "without a key, a repeat applies again"
    );
}

#[tokio::test]
async fn postgres_keys_apply_once_across_replicas_in_every_mode() {
    for mode in [
        "unguarded",
        "atomic",
        "optimistic",
        "for-update",
        "advisory",
        "serializable",
    ] {
        let (account, replicas) =
            crate::postgres::spawn_replicas(&format!("keys-{mode}"), 3, mode, "1ms", 0).await;
        keys_apply_once(&replicas).await;
        // The answers live beside the balance, in the same database.
        let kept: i64 = crate::postgres::sql()
            .await
            .query_one(
                "SELECT count(*) FROM racebank.idempotency WHERE account = $1",
                &[&account.as_str()],
            )
            .await
            .expect("the keys table exists")
            .get(0);
        assert_eq!(kept, 3, "{mode}: pay-1, pay-2 and pay-3");
    }
}

#[tokio::test]
async fn redis_keys_apply_once_across_replicas_in_every_mode() {
    for mode in ["unguarded", "atomic", "optimistic", "fenced"] {
        let replicas = redis_replicas(&format!("keys-{mode}"), mode, 2).await;
        keys_apply_once(&replicas).await;
    }
}

/// `count` replicas of a new Redis account in `mode` (1 ms of work, a 1 s lease), reset to 0.
async fn redis_replicas(name: &str, mode: &str, count: usize) -> Vec<TestApp> {
    let account = crate::redis::TestAccount::new(name).await;
    let replicas = account.replicas(count, mode, "1ms", 1000).await;
    replicas[0].reset(0).await;
    replicas
}

/// A deposit whose answer chaos drops: the client sees a broken connection, not an answer.
async fn dropped(app: &TestApp, key: Option<&str>) {
    let mut request = app
        .client
        .post(format!("{}/deposit", app.address))
        .header("content-type", "application/json")
        .body(amount_body(5));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let answer = request.send().await;
    assert!(answer.is_err(), "chaos should have dropped it: {answer:?}");
}

/// Every applied deposit's answer dropped (`drop-after-apply=1`): deterministic.
fn dropping(mut config: Config) -> Config {
    config.server.chaos = "drop-after-apply=1".parse().expect("a valid fault");
    config
}

#[tokio::test]
async fn a_retry_with_the_key_of_a_dropped_answer_gets_that_answer_and_pays_once() {
    let app = spawn_with(dropping(memory("atomic", "none"))).await;
    dropped(&app, Some("lost-ack")).await;
    let retry = keyed(&app, "/deposit", 5, "lost-ack").await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.replayed, "the retry is answered with the kept answer");
    assert_eq!(retry.body["balance"], 5);
    assert_eq!(app.balance().await, 5, "applied once");
}

#[tokio::test]
async fn a_retry_without_a_key_after_a_dropped_answer_pays_twice() {
    let app = spawn_with(dropping(memory("atomic", "none"))).await;
    dropped(&app, None).await;
    dropped(&app, None).await;
    assert_eq!(app.balance().await, 10, "the deposit was applied twice");
}

#[tokio::test]
async fn a_postgres_retry_with_the_key_of_a_dropped_answer_pays_once_on_another_replica() {
    let (account, replicas) =
        crate::postgres::spawn_replicas("lost-ack", 1, "atomic", "none", 0).await;
    let dropping_replica = spawn_with(dropping(crate::postgres::replica_config(
        &account, "atomic", "none",
    )))
    .await;
    dropped(&dropping_replica, Some("lost-ack")).await;
    let retry = keyed(&replicas[0], "/deposit", 5, "lost-ack").await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.replayed);
    assert_eq!(crate::postgres::row_balance(account.as_str()).await, 5);
}
