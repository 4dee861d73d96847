//! PostgreSQL stopped and started again under a running server.
//!
//! Each test runs a PostgreSQL server of its own (initdb into a temporary directory, a free
//! loopback port), because stopping the machine's shared server would fail every other test
//! running beside it. What a restart must do to racebank:
//! - a request in flight when the database goes away answers 503 `store-unavailable` (nothing was
//!   written), or, only if its write was already on its way, 500 `outcome-unknown`;
//! - the server reconnects by itself: the first request after the restart succeeds;
//! - nothing acknowledged is lost, and retries with the same key pay once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use racebank::wire::ProblemType;
use racebank::StoreConfig;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_postgres::NoTls;

use crate::helpers::{amount_body, spawn_with, TestApp};

/// A PostgreSQL server of one test: its own data directory and port. Stopped at once and deleted
/// when dropped.
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root: under root (as in CI) its commands run as `postgres`.
    as_postgres: bool,
}

impl Cluster {
    /// initdb and start; fails the test with one line if PostgreSQL's programs are missing.
    async fn start() -> Cluster {
        tokio::task::spawn_blocking(|| {
            let cluster = Cluster::init();
            cluster.pg_ctl_start();
            cluster
        })
        .await
        .expect("the cluster starts")
    }

    fn init() -> Cluster {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("racebank-restart-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free loopback port")
            .port();
        let cluster = Cluster {
            bin: postgres_bindir(),
            dir,
            port,
            as_postgres,
        };
        let data = cluster.data();
        run(cluster.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` from PostgreSQL's directory, run as `postgres` when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Starts the server and waits until it accepts connections.
    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-o", &options, "start"]));
    }

    /// `pg_ctl stop -m fast`, what a restart does: every session is ended, every open transaction
    /// rolled back, and clients are told so (SQLSTATE 57P01) before their connections close.
    fn pg_ctl_stop(&self, mode: &str) {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode, "stop"]));
    }

    async fn stop(self: &Arc<Self>) {
        let cluster = self.clone();
        tokio::task::spawn_blocking(move || cluster.pg_ctl_stop("fast"))
            .await
            .expect("the cluster stops");
    }

    async fn start_again(self: &Arc<Self>) {
        let cluster = self.clone();
        tokio::task::spawn_blocking(move || cluster.pg_ctl_start())
            .await
            .expect("the cluster starts again");
    }

    /// The balance in the account's row, read directly.
    async fn row_balance(&self, account: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("connect to the test's own PostgreSQL");
        tokio::spawn(connection);
        super::row_balance_on(&client, account).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Where initdb and pg_ctl are: `pg_config --bindir`, as Debian's packages install them.
fn postgres_bindir() -> PathBuf {
    let bindir = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    match bindir {
        Some(bindir) if Path::new(&bindir).join("initdb").exists() => bindir,
        _ => panic!(
            "PostgreSQL's server programs (initdb, pg_ctl) are not found through `pg_config \
             --bindir`: install them with `apt-get install postgresql`"
        ),
    }
}

/// Runs `command`, failing the test with what it printed if it fails.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One racebank server on `cluster`, with a pool as large as the load, so no request waits for a
/// connection: what fails during the restart fails because of the restart.
async fn spawn_on(cluster: &Cluster, mode: &str, work: &str) -> (TestApp, String) {
    let account = super::unique_account(mode);
    let mut config = super::replica_config(&account, mode, work);
    config.account.store = StoreConfig::Postgres {
        url: cluster.url(),
        pool_size: CONCURRENCY,
    };
    let app = spawn_with(config).await;
    app.reset(0).await;
    (app, account.as_str().to_string())
}

async fn deposit_with_key(app: &TestApp, amount: i64, key: &str) -> Response {
    app.client
        .post(format!("{}/deposit", app.address))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(amount_body(amount))
        .send()
        .await
        .expect("the server answers, whatever its database does")
}

/// The problem type of a failed answer, which must be a problem document.
async fn problem_of(answer: Response) -> ProblemType {
    let status = answer.status();
    let body = answer.bytes().await.expect("read the answer");
    let problem = ProblemType::of_document(&body).unwrap_or_else(|| {
        panic!(
            "a {status} that is not a problem document: {}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(status.as_u16(), problem.status(), "{problem:?}");
    problem
}

/// Deposits sent: deposit `i` is of `i + 1`, so the sum is exact and names its deposits.
const DEPOSITS: u64 = 300;
/// Deposits in flight at once, and the pool's size.
const CONCURRENCY: usize = 16;

/// Where the restart is.
const UP: u64 = 0;
const STOPPING: u64 = 1;
const DOWN: u64 = 2;
const BACK: u64 = 3;

/// What one deposit went through.
#[derive(Default)]
struct Outcome {
    /// Answers 503 `store-unavailable` to attempts sent before the database was down: in flight
    /// when it stopped.
    unavailable_in_flight: u64,
    /// Answers 503 to attempts sent while it was down.
    unavailable_while_down: u64,
    /// Answers 500 `outcome-unknown`: sent, and the database went away before answering.
    unknown: u64,
    /// Attempts that failed though they were sent after the database was back.
    failed_after_restart: u64,
}

// for-update: each request holds a transaction and the row lock through its work, so the restart
// finds requests inside transactions and in the queue for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_under_for_update_fails_requests_in_flight_with_503_and_loses_nothing(
) {
    restart_mid_run("for-update").await;
}

// atomic: the work comes first, then one statement; the restart finds requests working, about to
// take a connection that the restart closed, and statements on their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_under_atomic_fails_requests_in_flight_with_503_and_loses_nothing(
) {
    restart_mid_run("atomic").await;
}

/// Keyed deposits in `mode`, PostgreSQL restarted a third of the way through; every deposit that
/// failed is retried with its key once the database is back.
async fn restart_mid_run(mode: &str) {
    let cluster = Arc::new(Cluster::start().await);
    let (app, account) = spawn_on(&cluster, mode, "5ms").await;
    let app = Arc::new(app);
    let acknowledged = Arc::new(AtomicU64::new(0));
    // UP, then STOPPING (`pg_ctl stop` under way), DOWN, and BACK.
    let phase = Arc::new(AtomicU64::new(UP));
    let slots = Arc::new(Semaphore::new(CONCURRENCY));

    let deposits = (0..DEPOSITS).map(|i| {
        let (app, slots) = (app.clone(), slots.clone());
        let (acknowledged, phase) = (acknowledged.clone(), phase.clone());
        async move {
            let _slot = slots.acquire().await.unwrap();
            let amount = i64::try_from(i).expect("a small index") + 1;
            let key = format!("restart-{i}");
            let mut outcome = Outcome::default();
            for _attempt in 0..20 {
                let sent_in = phase.load(Ordering::SeqCst);
                let answer = deposit_with_key(&app, amount, &key).await;
                if answer.status() == StatusCode::OK {
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                    return (outcome, true);
                }
                if sent_in == BACK {
                    outcome.failed_after_restart += 1;
                }
                match problem_of(answer).await {
                    ProblemType::StoreUnavailable if sent_in <= STOPPING => {
                        outcome.unavailable_in_flight += 1;
                    }
                    ProblemType::StoreUnavailable => outcome.unavailable_while_down += 1,
                    ProblemType::OutcomeUnknown => outcome.unknown += 1,
                    other => panic!("deposit {i} failed with {other:?}"),
                }
                // Retry with the same key once the database is back.
                while phase.load(Ordering::SeqCst) != BACK {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            (outcome, false)
        }
    });
    let restart = async {
        while acknowledged.load(Ordering::SeqCst) < DEPOSITS / 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        phase.store(STOPPING, Ordering::SeqCst);
        cluster.stop().await;
        phase.store(DOWN, Ordering::SeqCst);
        // Down for a while: requests arriving now find no database at all.
        let down = app.deposit(1).await;
        assert_eq!(problem_of(down).await, ProblemType::StoreUnavailable);
        let balance = app.get("/balance").await;
        assert_eq!(problem_of(balance).await, ProblemType::StoreUnavailable);
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.start_again().await;
        phase.store(BACK, Ordering::SeqCst);
    };
    let (outcomes, ()) = tokio::join!(join_all(deposits), restart);

    let total = |field: fn(&Outcome) -> u64| outcomes.iter().map(|(o, _)| field(o)).sum::<u64>();
    let in_flight = total(|o| o.unavailable_in_flight);
    let unknown = total(|o| o.unknown);
    assert!(
        in_flight > 0,
        "{mode}: requests in flight when PostgreSQL stopped answered 503"
    );
    assert_eq!(
        total(|o| o.failed_after_restart),
        0,
        "{mode}: every request sent after the restart succeeded: the server reconnected by itself"
    );
    assert!(
        outcomes.iter().all(|(_, acknowledged)| *acknowledged),
        "{mode}: every deposit was acknowledged in the end"
    );
    // Exact: each deposit applied once, those retried after a 503 or an unknown outcome included.
    let sum = i64::try_from(DEPOSITS * (DEPOSITS + 1) / 2).expect("a small sum");
    assert_eq!(cluster.row_balance(&account).await, sum, "{mode}");
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["deposit_count"], DEPOSITS, "{stats}");
    assert_eq!(stats["balance"], sum, "{stats}");
    assert_eq!(stats["expected_balance"], sum, "{stats}");
    assert_eq!(stats["lost_updates"], 0, "{stats}");
    eprintln!(
        "{mode} restart: {in_flight} in flight answered 503, {} while down, {unknown} outcome unknown",
        total(|o| o.unavailable_while_down)
    );
}

/// A request that read the balance and is doing its work when PostgreSQL stops has sent no write:
/// it answers 503, never "outcome unknown", in the modes whose write is a statement of its own
/// (`mutex` and `semaphore:N` run `unguarded`'s section).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_the_work_answers_503_because_the_write_was_never_sent() {
    let cluster = Arc::new(Cluster::start().await);
    for mode in ["unguarded", "optimistic"] {
        let (app, account) = spawn_on(&cluster, mode, "1s").await;
        let in_window = async {
            // Long enough to have read the balance, and the stop is over well before the work is.
            tokio::time::sleep(Duration::from_millis(200)).await;
            cluster.stop().await;
        };
        let (answer, ()) = tokio::join!(app.deposit(5), in_window);
        assert_eq!(
            problem_of(answer).await,
            ProblemType::StoreUnavailable,
            "{mode}: the write was never sent"
        );
        cluster.start_again().await;
        let after = app.deposit(7).await;
        assert_eq!(after.status(), StatusCode::OK, "{mode}: reconnected");
        assert_eq!(cluster.row_balance(&account).await, 7, "{mode}");
    }
}
