//! A replica killed with SIGKILL in the middle of a run on the PostgreSQL store: three real
//! `racebank` processes share one account; deposits with idempotency keys are spread over them;
//! one is killed while requests are in flight there; the client retries what went unanswered on
//! the next replica with the same key. Nothing acknowledged is lost, nothing is applied twice, and
//! the requests the kill left without an answer are counted as what they were: indeterminate until
//! their retry.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::helpers::amount_body;
use crate::postgres::{database_url, row_balance, sql, unique_account};
use crate::process::{self, Process};

/// Starts `racebank --store postgres` on a free port for `account`, doing `work` per request.
fn start_replica(account: &str, work: &str) -> Process {
    let database_url = database_url();
    let (replica, stderr) = process::start(
        "",
        &[
            "--store",
            "postgres",
            "--mode",
            "atomic",
            "--account",
            account,
            "--work",
            work,
            "--pool-size",
            "4",
            "--database-url",
            &database_url,
        ],
    );
    // Keep reading, so a full pipe never blocks the server's logging.
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).for_each(drop));
    replica
}

/// Deposits sent; deposit `i` is of `i + 1`, so every sum names its deposits.
const DEPOSITS: u64 = 240;
/// The replica that is killed, and the work that keeps its requests in flight long enough.
const VICTIM: usize = 2;
const VICTIM_WORK: &str = "100ms";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_run_loses_nothing_acknowledged_and_retries_with_keys_pay_once() {
    let database = sql().await;
    let account = unique_account("crash");
    let mut replicas: Vec<Process> = (0..3)
        .map(|i| {
            start_replica(
                account.as_str(),
                if i == VICTIM { VICTIM_WORK } else { "2ms" },
            )
        })
        .collect();
    let urls: Arc<Vec<String>> = Arc::new(
        replicas
            .iter()
            .map(|r| format!("http://{}", r.address))
            .collect(),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acknowledged = Arc::new(AtomicU64::new(0));
    let in_flight_at_victim = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(Semaphore::new(24));

    let deposits = (0..DEPOSITS).map(|i| {
        let (client, urls, slots) = (client.clone(), urls.clone(), slots.clone());
        let (acknowledged, in_flight) = (acknowledged.clone(), in_flight_at_victim.clone());
        async move {
            let _slot = slots.acquire().await.unwrap();
            let amount = i64::try_from(i).expect("a small index") + 1;
            let mut unanswered = 0;
            for attempt in 0..6 {
                let replica = (usize::try_from(i).expect("a small index") + attempt) % urls.len();
                if replica == VICTIM {
                    in_flight.fetch_add(1, Ordering::SeqCst);
                }
                let answer = client
                    .post(format!("{}/deposit", urls[replica]))
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("crash-{i}"))
                    .body(amount_body(amount))
                    .send()
                    .await;
                if replica == VICTIM {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                match answer {
                    Ok(answer) if answer.status() == StatusCode::OK => {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                        return (amount, unanswered, true);
                    }
                    // No answer, or one saying the outcome is unknown: retry, same key.
                    Ok(answer) if answer.status().is_server_error() => unanswered += 1,
                    Ok(answer) => panic!("deposit {i}: {}", answer.status()),
                    Err(_) => unanswered += 1,
                }
            }
            (amount, unanswered, false)
        }
    });
    let killer = async {
        // Kill once the run is well under way and requests are in flight at the victim: each needs
        // 100 ms of work there, so they cannot all finish between this check and the kill.
        // (Bounded, so that a run that never gets there fails instead of hanging.)
        let mut waited = 0;
        while acknowledged.load(Ordering::SeqCst) < DEPOSITS / 3
            || in_flight_at_victim.load(Ordering::SeqCst) < 4
        {
            waited += 1;
            assert!(
                waited < 60_000,
                "the run never had requests in flight at the victim"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        replicas[VICTIM].child.kill().expect("SIGKILL the replica");
    };
    let (outcomes, ()) = tokio::join!(join_all(deposits), killer);

    let unanswered: u64 = outcomes.iter().map(|(_, unanswered, _)| unanswered).sum();
    assert!(
        unanswered > 0,
        "the kill left requests without an answer: indeterminate until retried"
    );
    assert!(
        outcomes.iter().all(|(_, _, acked)| *acked),
        "every deposit was acknowledged in the end, by a surviving replica"
    );
    let sum: i64 = outcomes.iter().map(|(amount, _, _)| amount).sum();
    // Exact: every deposit is in the database, and none twice, though some were sent twice.
    assert_eq!(row_balance(account.as_str()).await, sum);
    let stats: Value = client
        .get(format!("{}/stats", urls[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["deposit_count"], DEPOSITS);
    assert_eq!(stats["balance"], sum);
    assert_eq!(stats["expected_balance"], sum);
    assert_eq!(stats["lost_updates"], 0);
    let keys: i64 = database
        .query_one(
            "SELECT count(*) FROM racebank.idempotency WHERE account = $1",
            &[&account.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        keys,
        i64::try_from(DEPOSITS).expect("a small count"),
        "one kept answer per deposit"
    );
}
