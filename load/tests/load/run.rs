//! `run` in-process against the real server.

use crate::helpers::{opts, spawn_server};
use racebank_load::Render as _;

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

    assert_eq!(report.summary.requests, 10_000);
    assert_eq!(
        report.summary.errors.total(),
        0,
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.summary.ok + report.summary.refused, 10_000);
    assert!(report.summary.consistent, "{}", report.to_text());
    assert_eq!(report.summary.lost_amount, Some(0));
    assert!(!report.summary.overdraft);
    assert_eq!(report.summary.initial_balance, 1_000_000);
    assert_eq!(
        report.summary.expected_balance,
        report.summary.final_balance.map(i128::from)
    );
    assert_eq!(
        report.summary.duplicates, None,
        "mixed operations are not checked for duplicates"
    );
    // Wide margin around 30% withdrawals: the sequence is fixed by the seed anyway.
    let withdrawals = report.summary.acknowledged.withdrawals + report.summary.refused;
    assert!((2_500..=3_500).contains(&withdrawals), "{withdrawals}");
    let check = report
        .summary
        .server_stats
        .as_ref()
        .expect("racebank has /stats");
    assert!(check.agrees, "{check:?}");
    assert_eq!(check.lost_updates, 0);
    assert_eq!(Some(stats.balance), report.summary.final_balance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unguarded_deposits_are_found_lost_and_the_client_matches_the_servers_stats() {
    let server = spawn_server("unguarded", "1ms", 0).await;

    let report = racebank_load::run(opts(&server.url, &["-n", "1000", "-c", "64"]))
        .await
        .expect("run");
    let stats = server.stop().await;

    assert_eq!(report.summary.ok, 1000, "every deposit is acknowledged");
    assert!(!report.summary.consistent);
    assert_eq!(report.summary.expected_balance, Some(5000));
    assert!(report.summary.lost_amount > Some(0), "{}", report.to_text());
    assert_eq!(
        report.summary.lost_amount,
        report.summary.final_balance.map(|b| 5000 - i128::from(b))
    );
    assert!(
        report.summary.duplicates.unwrap_or(0) > 0,
        "{:?}",
        report.summary.duplicates
    );
    assert_eq!(report.summary.unexpected_balances, Some(0));
    // The client's own accounting equals the server's ledger.
    assert_eq!(
        report.summary.expected_balance,
        Some(stats.expected_balance)
    );
    assert_eq!(report.summary.final_balance, Some(stats.balance));
    let check = report
        .summary
        .server_stats
        .as_ref()
        .expect("racebank has /stats");
    assert!(check.agrees, "{check:?}");
    assert_eq!(Some(check.lost_net), report.summary.lost_amount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_widen_the_expectation_into_a_range_without_a_false_alarm() {
    // Every request holds the lock for 1 s; the client gives up after 100 ms. The balance reads
    // around the run take no lock and have the same 100 ms, a hundred times what they need.
    let server = spawn_server("mutex", "1s", 1000).await;
    let args = ["-n", "20", "-c", "10", "--timeout", "100ms"];

    let report = racebank_load::run(opts(&server.url, &args))
        .await
        .expect("run");
    server.stop().await;

    assert_eq!(
        report.summary.errors.timeout, 20,
        "{:?}",
        report.summary.errors
    );
    assert_eq!(report.summary.ok, 0);
    assert_eq!(report.summary.expected_balance, None);
    assert_eq!(
        (report.summary.expected_min, report.summary.expected_max),
        (1000, 1100)
    );
    assert_eq!(report.summary.lost_amount, Some(0));
    // No false alarm, and no false reassurance: with nothing acknowledged the answers prove
    // nothing either way (issue 17).
    assert_eq!(
        report.summary.verdict,
        racebank_load::Conclusion::Inconclusive,
        "{}",
        report.to_text()
    );
    assert!(!report.summary.consistent);
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

    assert!(report.summary.requests > 0);
    assert!(
        report.summary.duration_s < 5.0,
        "{}",
        report.summary.duration_s
    );
    assert!(report.summary.consistent, "{}", report.to_text());
    assert_eq!(report.summary.duplicates, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_client_during_the_run_makes_it_inconclusive_not_lost() {
    // A correct server, and a second client depositing 7 at a time for the whole run.
    let server = spawn_server("mutex", "1ms", 0).await;
    let client = reqwest::Client::new();
    let deposit_url = format!("{}/deposit", server.url);
    let deposit = {
        let client = client.clone();
        let url = deposit_url.clone();
        move || {
            let client = client.clone();
            let url = url.clone();
            async move {
                client
                    .post(url)
                    .json(&serde_json::json!({"amount": 7}))
                    .send()
                    .await
                    .expect("the other client's deposit")
            }
        }
    };
    deposit().await;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let other = tokio::spawn({
        let deposit = deposit.clone();
        async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = deposit() => {}
                }
            }
        }
    });

    let report = racebank_load::run(opts(&server.url, &["-n", "200", "-c", "8"]))
        .await
        .expect("run");
    let _ = stop.send(());
    other.await.expect("the other client");
    server.stop().await;

    assert_eq!(
        report.summary.verdict,
        racebank_load::Conclusion::Inconclusive,
        "{}",
        report.to_text()
    );
    assert!(!report.summary.consistent);
    assert_eq!(report.exit_code(), racebank_load::EXIT_INCONCLUSIVE);
    let text = report.to_text();
    assert!(
        text.contains("INCONCLUSIVE") && text.contains("another client"),
        "{text}"
    );
    assert!(!text.contains("updates were lost"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_has_one_line_per_request_spread_over_the_replicas() {
    let server = spawn_server("mutex", "none", 0).await;
    let path = std::env::temp_dir().join(format!(
        "racebank-load-history-{}.jsonl",
        std::process::id()
    ));
    let path_text = path.to_string_lossy().to_string();
    // The same server twice: the two "replicas" share the account, as real replicas would.
    let second = format!("{}/", server.url);
    let args = [
        "--url",
        &second,
        "-n",
        "500",
        "-c",
        "8",
        "--history",
        &path_text,
    ];

    let report = racebank_load::run(opts(&server.url, &args))
        .await
        .expect("run");
    server.stop().await;

    assert!(report.summary.consistent, "{}", report.to_text());
    assert_eq!(report.setup.urls.len(), 2);
    let text = std::fs::read_to_string(&path).expect("the history file");
    let _ = std::fs::remove_file(&path);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 500);
    let mut indices: Vec<u64> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..500).collect::<Vec<_>>());
    for line in &lines {
        assert_eq!(line["op"], "deposit", "{line}");
        assert_eq!(line["outcome"], "ok", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert!(line["balance"].is_i64(), "{line}");
        assert!(line["connection"].as_u64().unwrap() < 8, "{line}");
        assert!(
            line["start_us"].as_u64() <= line["end_us"].as_u64(),
            "{line}"
        );
        // Round robin: request i goes to replica i % 2.
        assert_eq!(
            line["replica"].as_u64(),
            line["index"].as_u64().map(|i| i % 2),
            "{line}"
        );
    }
}
