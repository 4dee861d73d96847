//! Redis losing acknowledged writes under a running server: restarted without persistence, or
//! restored from an older snapshot. The server must refuse the account with a problem document
//! (503 `store-rolled-back`), never re-create it or serve the older state as if nothing happened;
//! with an append-only file flushed at every write, a restart keeps everything and service goes on.
//!
//! Each test runs a `redis-server` of its own (a free loopback port, a temporary directory),
//! because restarting the machine's shared Redis would fail every test beside it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use racebank::wire::ProblemType;
use racebank::{AccountConfig, Config, OpenError, ServeError, StoreConfig};
use redis::aio::MultiplexedConnection;
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_with, TestApp};
use crate::redis::TestAccount;

/// A `redis-server` of one test: its own port and directory. Killed and deleted when dropped.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` with `args` (its persistence) on a free port, in a new directory.
    async fn start(args: &[&str]) -> PrivateRedis {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("racebank-redis-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the Redis directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis {
            port,
            dir,
            args: args.iter().map(ToString::to_string).collect(),
            child: None,
        };
        redis.run().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it answers `PING`.
    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut connection) = self.connect().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connect(&self) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// Kills Redis (SIGKILL: no shutdown save) and starts it again on the same port and directory:
    /// it comes back with whatever its persistence kept.
    async fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.run().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Persistence off, as the shared test Redis runs.
const NO_PERSISTENCE: &[&str] = &["--save", "", "--appendonly", "no"];

/// A server in `mode` for an account of its own on `redis`.
async fn server_on(redis: &PrivateRedis, mode: &str) -> TestApp {
    let app = spawn_with(config_on(redis, mode)).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app
}

fn config_on(redis: &PrivateRedis, mode: &str) -> Config {
    Config {
        account: AccountConfig {
            store: StoreConfig::Redis { url: redis.url() },
            mode: mode.parse().expect("a valid mode"),
            work: "none".parse().expect("valid work"),
            lease: Duration::from_secs(5),
            ..AccountConfig::default()
        },
        ..Config::default()
    }
}

/// An answer, read: its status, its `Retry-After` and its JSON body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

async fn read(response: Response) -> Answer {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(ToString::to_string);
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// `/balance` once the server's connection to the restarted Redis is back: the first answer other
/// than 503 `store-unavailable`.
async fn after_reconnecting(app: &TestApp) -> Answer {
    let started = Instant::now();
    loop {
        let answer = read(app.get("/balance").await).await;
        if answer.body["type"] != ProblemType::StoreUnavailable.urn() {
            return answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a request again while it answers 503 `store-unavailable` (nothing written: a connection
/// of the server's, such as `optimistic`'s dedicated ones, still broken from before the restart).
async fn resent<F, Fut>(send: F) -> Answer
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    for _ in 0..5 {
        let answer = read(send().await).await;
        if answer.body["type"] != ProblemType::StoreUnavailable.urn() {
            return answer;
        }
    }
    panic!("still store-unavailable after 5 tries");
}

/// Asserts the answer is the refusal of an account that lost writes: 503, `Retry-After`, and a
/// problem document naming what happened and what to do.
fn assert_refused(answer: &Answer, happened: &str, case: &str) {
    let body = &answer.body;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{case}: {body}"
    );
    assert_eq!(answer.retry_after.as_deref(), Some("1"), "{case}");
    assert_eq!(
        body["type"],
        ProblemType::StoreRolledBack.urn(),
        "{case}: {body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(happened), "{case}: {detail}");
    assert!(
        detail.contains("POST /reset"),
        "{case}: says what to do: {detail}"
    );
}

/// The account's key `name`, read directly.
async fn get_key(redis: &PrivateRedis, name: &str) -> Option<i64> {
    let mut connection = redis.connect().await.unwrap();
    redis::cmd("GET")
        .arg(format!("racebank:{{main}}:{name}"))
        .query_async(&mut connection)
        .await
        .unwrap()
}

async fn get_balance_key(redis: &PrivateRedis) -> Option<i64> {
    get_key(redis, "balance").await
}

#[tokio::test]
async fn a_redis_restarted_without_persistence_is_refused_not_re_created_in_every_mode() {
    for mode in ["unguarded", "optimistic", "atomic", "lease", "fenced"] {
        let mut redis = PrivateRedis::start(NO_PERSISTENCE).await;
        let app = server_on(&redis, mode).await;
        for _ in 0..3 {
            assert_eq!(app.deposit(5).await.status(), StatusCode::OK, "{mode}");
        }

        redis.crash_and_restart().await;

        assert_refused(&after_reconnecting(&app).await, "vanished", mode);
        assert_refused(&resent(|| app.deposit(5)).await, "vanished", mode);
        assert_refused(&resent(|| app.withdraw(5)).await, "vanished", mode);
        assert_refused(&read(app.get("/stats").await).await, "vanished", mode);
        assert_eq!(
            get_balance_key(&redis).await,
            None,
            "{mode}: not re-created"
        );
        // A replica started now does not re-create it either: the account is halted.
        let later = server_on(&redis, mode).await;
        assert_refused(&read(later.deposit(5).await).await, "vanished", mode);
        assert_eq!(
            get_balance_key(&redis).await,
            None,
            "{mode}: not re-created"
        );

        // The operator's way back: a reset, then service as usual.
        let reset = later.reset(100).await;
        assert_eq!(reset.balance, 100, "{mode}");
        assert_eq!(
            resent(|| app.deposit(5)).await.status,
            StatusCode::OK,
            "{mode}"
        );
        assert_eq!(later.stats().await.balance, 105, "{mode}");
    }
}

#[tokio::test]
async fn a_redis_that_went_back_to_an_older_snapshot_is_refused_by_the_replica_that_saw_more() {
    for mode in ["unguarded", "optimistic", "atomic", "fenced"] {
        let mut redis = PrivateRedis::start(NO_PERSISTENCE).await;
        let app = server_on(&redis, mode).await;
        assert_eq!(app.deposit(5).await.status(), StatusCode::OK, "{mode}");
        let mut connection = redis.connect().await.unwrap();
        let _: String = redis::cmd("SAVE")
            .query_async(&mut connection)
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(app.deposit(5).await.status(), StatusCode::OK, "{mode}");
        }

        let handed_out = get_key(&redis, "fence").await.unwrap_or(0);

        // Killed after the snapshot: it comes back with the balance of 5 and its ledger.
        redis.crash_and_restart().await;

        assert_eq!(
            get_balance_key(&redis).await,
            Some(5),
            "{mode}: the snapshot"
        );
        assert_refused(&after_reconnecting(&app).await, "went back in time", mode);
        assert_refused(&resent(|| app.deposit(5)).await, "went back in time", mode);
        assert_eq!(
            get_balance_key(&redis).await,
            Some(5),
            "{mode}: nothing written"
        );
        // Every replica refuses it, even one that never saw the lost writes.
        let later = server_on(&redis, mode).await;
        assert_refused(
            &read(later.deposit(5).await).await,
            "went back in time",
            mode,
        );

        // After the operator's reset, no fencing token of the lost history is handed out again.
        later.reset(0).await;
        let fence = get_key(&redis, "fence").await.unwrap_or(0);
        assert!(
            fence > handed_out,
            "{mode}: fence {fence} after {handed_out}"
        );
        assert_eq!(
            resent(|| app.deposit(5)).await.status,
            StatusCode::OK,
            "{mode}"
        );
        assert_eq!(later.stats().await.balance, 5, "{mode}");
    }
}

#[tokio::test]
async fn a_redis_with_an_append_only_file_flushed_at_every_write_keeps_everything_across_a_crash() {
    let mut redis = PrivateRedis::start(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ])
    .await;
    let app = server_on(&redis, "atomic").await;
    for _ in 0..3 {
        assert_eq!(app.deposit(5).await.status(), StatusCode::OK);
    }

    redis.crash_and_restart().await;

    assert_eq!(after_reconnecting(&app).await.status, StatusCode::OK);
    assert_eq!(resent(|| app.deposit(5)).await.status, StatusCode::OK);
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.deposit_count), (20, 4));
    assert_eq!(stats.expected_balance, 20);
}

#[tokio::test]
async fn a_server_that_requires_an_append_only_file_refuses_to_start_on_a_redis_without_one() {
    let redis = PrivateRedis::start(NO_PERSISTENCE).await;
    let mut config = config_on(&redis, "atomic");
    config.account.redis_require_aof = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

    let outcome = racebank::serve(listener, config, async {}).await;

    let Err(ServeError::Open(OpenError::Store(message))) = outcome else {
        panic!("expected an open error, got {outcome:?}");
    };
    assert!(message.contains("--redis-require-aof"), "{message}");
    assert!(
        message.contains("a restart loses every account"),
        "{message}"
    );
    assert!(message.contains("--appendonly yes"), "{message}");

    let aof = PrivateRedis::start(&["--appendonly", "yes"]).await;
    let mut config = config_on(&aof, "atomic");
    config.account.redis_require_aof = true;
    let app = spawn_with(config).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn redis_atomic_with_its_balance_key_deleted_answers_the_vanished_problem_not_outcome_unknown(
) {
    let account = TestAccount::new("atomic-deleted").await;
    let app = spawn_with(account.config("atomic", "none", 100)).await;
    assert_eq!(app.deposit(5).await.status(), StatusCode::OK);
    account.delete_balance().await;

    let answer = read(app.deposit(5).await).await;

    assert_refused(&answer, "vanished", "atomic");
    account.delete().await;
}
