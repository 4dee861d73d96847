//! `run` in-process against the real server.

use crate::helpers::{opts, spawn_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_mode_is_consistent_over_ten_thousand_mixed_requests() {
    let server = spawn_server("mutex", "none", 1_000_000).await;
    let args = [
        "-n",
        "10000",
        "-c",
        "64",
        "--withdraw-ratio",
        "0.3",
        "--amount",
        "1..100",
    ];

    let report = racebank_load::run(opts(&server.url, &args))
        .await
        .expect("run");
    let stats = server.stop().await;

    assert_eq!(report.requests, 10_000);
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
    assert_eq!(report.ok + report.refused, 10_000);
    assert!(report.consistent, "{}", report.to_text());
    assert_eq!(report.lost_amount, 0);
    assert!(!report.overdraft);
    assert_eq!(report.initial_balance, 1_000_000);
    assert_eq!(
        report.expected_balance,
        Some(i128::from(report.final_balance))
    );
    assert_eq!(
        report.duplicates, None,
        "mixed operations are not checked for duplicates"
    );
    // Wide margin around 30% withdrawals: the sequence is fixed by the seed anyway.
    let withdrawals = report.acknowledged.withdrawals + report.refused;
    assert!((2_500..=3_500).contains(&withdrawals), "{withdrawals}");
    let check = report.server_stats.as_ref().expect("racebank has /stats");
    assert!(check.agrees, "{check:?}");
    assert_eq!(check.lost_updates, 0);
    assert_eq!(stats.balance, report.final_balance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unguarded_deposits_are_found_lost_and_the_client_matches_the_servers_stats() {
    let server = spawn_server("unguarded", "1ms", 0).await;

    let report = racebank_load::run(opts(&server.url, &["-n", "1000", "-c", "64"]))
        .await
        .expect("run");
    let stats = server.stop().await;

    assert_eq!(report.ok, 1000, "every deposit is acknowledged");
    assert!(!report.consistent);
    assert_eq!(report.expected_balance, Some(5000));
    assert!(report.lost_amount > 0, "{}", report.to_text());
    assert_eq!(report.lost_amount, 5000 - i128::from(report.final_balance));
    assert!(
        report.duplicates.unwrap_or(0) > 0,
        "{:?}",
        report.duplicates
    );
    assert_eq!(report.unexpected_balances, Some(0));
    // The client's own accounting equals the server's ledger.
    assert_eq!(report.expected_balance, Some(stats.expected_balance));
    assert_eq!(report.final_balance, stats.balance);
    let check = report.server_stats.as_ref().expect("racebank has /stats");
    assert!(check.agrees, "{check:?}");
    assert_eq!(check.lost_net, report.lost_amount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_widen_the_expectation_into_a_range_without_a_false_alarm() {
    // Every request holds the lock for 50 ms; the client gives up after 10 ms.
    let server = spawn_server("mutex", "50ms", 1000).await;
    let args = ["-n", "20", "-c", "10", "--timeout", "10ms"];

    let report = racebank_load::run(opts(&server.url, &args))
        .await
        .expect("run");
    server.stop().await;

    assert_eq!(report.errors.timeout, 20, "{:?}", report.errors);
    assert_eq!(report.ok, 0);
    assert_eq!(report.expected_balance, None);
    assert_eq!((report.expected_min, report.expected_max), (1000, 1100));
    assert!(report.consistent, "{}", report.to_text());
    assert_eq!(report.lost_amount, 0);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_that_names_it() {
    let error = racebank_load::run(opts("http://127.0.0.1:1", &["-n", "10"]))
        .await
        .expect_err("nothing listens on port 1");
    let message = format!("{error:#}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_limited_run_stops_on_time_and_stays_consistent() {
    let server = spawn_server("atomic", "none", 0).await;

    let report = racebank_load::run(opts(&server.url, &["-z", "300ms", "-c", "8"]))
        .await
        .expect("run");
    server.stop().await;

    assert!(report.requests > 0);
    assert!(report.duration_s < 5.0, "{}", report.duration_s);
    assert!(report.consistent, "{}", report.to_text());
    assert_eq!(report.duplicates, Some(0));
}
