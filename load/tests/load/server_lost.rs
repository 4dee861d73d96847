//! A server that stops answering during the run: what was acknowledged is reported, the final
//! balance is said to be unknown, and the verdict is `unknown` with its own exit status.

use racebank_load::Render as _;
use std::process::{Command, Output, Stdio};

use racebank_load::{Conclusion, EXIT_SERVER_LOST};

use crate::binary::BIN;
use crate::helpers::{opts, spawn_server, wait_for_deposits, KillableServer};

/// `racebank-load ARGS -c 4 --json` against a `mutex` server with 20 ms of work, killed with
/// SIGKILL once it has acknowledged three deposits; what the binary printed and its exit status.
async fn killed_after_three_deposits(args: &[&str]) -> Output {
    let server = KillableServer::start("mutex", "20ms");
    let child = Command::new(BIN)
        .args(["--url", &server.url, "-c", "4", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    wait_for_deposits(&server.url, 3).await;

    server.kill().await;
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("the binary ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_gives_a_report_with_the_acknowledged_sums_and_exit_5() {
    // Each deposit holds the lock for 20 ms: 1000 of them would take 20 s, so the kill lands
    // mid-run; after it, every request is refused a connection at once.
    let output = killed_after_three_deposits(&["-n", "1000"]).await;

    assert_eq!(
        output.status.code(),
        Some(i32::from(EXIT_SERVER_LOST)),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the report");
    assert_eq!(json["verdict"], "unknown", "{json}");
    assert_eq!(json["final_balance"], serde_json::Value::Null, "{json}");
    assert_eq!(json["lost_amount"], serde_json::Value::Null, "{json}");
    assert_eq!(json["server_stats"], serde_json::Value::Null, "{json}");
    assert!(
        json["server_lost"]
            .as_str()
            .is_some_and(|reason| reason.contains("no server answers")),
        "{json}"
    );
    // Once every connection is refused, each slot tries at most every 10 ms and gives up after 1 s:
    // the ~990 requests left would need 2.5 s at that pace, so the run ends early, and says why.
    assert!(
        json["stopped_early"]
            .as_str()
            .is_some_and(|reason| reason.contains("every connection was refused")),
        "{json}"
    );
    let requests = json["requests"].as_i64().unwrap();
    assert!(requests < 1000, "{json}");
    let deposits = json["acknowledged"]["deposits"].as_i64().unwrap();
    assert!(deposits >= 3, "{json}");
    assert_eq!(json["acknowledged"]["deposit_sum"], deposits * 5, "{json}");
    // The requests in flight when it died (and any sent on a connection it was closing) may
    // have been applied: they widen the range. Every other request was refused a connection.
    let uncertain = json["indeterminate"]["deposit_sum"].as_i64().unwrap();
    assert_eq!(
        json["indeterminate"]["deposits"], json["errors"]["transport"],
        "{json}"
    );
    assert_eq!(
        deposits
            + json["errors"]["transport"].as_i64().unwrap()
            + json["errors"]["connect"].as_i64().unwrap(),
        requests,
        "{json}"
    );
    assert_eq!(json["expected_min"], deposits * 5, "{json}");
    assert_eq!(json["expected_max"], deposits * 5 + uncertain, "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_run_is_reported_in_text_with_the_range_it_should_hold() {
    // SIGTERM's path: the server drains what is in flight and closes.
    let server = spawn_server("mutex", "20ms", 0).await;
    let load = opts(&server.url, &["-n", "1000", "-c", "4"]);
    let run = tokio::spawn(racebank_load::run(load));
    wait_for_deposits(&server.url, 3).await;

    let stats = server.stop().await;
    let report = run.await.expect("join").expect("a report, not an error");

    assert_eq!(
        report.summary.verdict,
        Conclusion::Unknown,
        "{}",
        report.to_text()
    );
    assert_eq!(report.exit_code(), EXIT_SERVER_LOST);
    assert_eq!(report.summary.final_balance, None);
    // Whatever the drain did with the last requests, the balance the server really ended with
    // lies in the range the report gives.
    let balance = i128::from(stats.balance);
    assert!(
        (report.summary.expected_min..=report.summary.expected_max).contains(&balance),
        "server ended at {balance}\n{}",
        report.to_text()
    );
    let text = report.to_text();
    for expected in [
        "Server lost:       the server stopped answering: no server answers at",
        "Final balance:     unknown: the server stopped answering",
        "Lost amount:       unknown",
        "Server /stats:     not read: the server stopped answering",
        "Consistent:        UNKNOWN: the server stopped answering; a correct server would now hold",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("start one with"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_run_whose_server_dies_stops_soon_after_instead_of_hammering_it_until_the_deadline()
{
    let output = killed_after_three_deposits(&["-z", "60s"]).await;

    assert_eq!(output.status.code(), Some(i32::from(EXIT_SERVER_LOST)));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the report");
    assert!(json["stopped_early"].is_string(), "{json}");
    // It gives up one second after the last connection it had; the deadline was a minute away.
    assert!(json["duration_s"].as_f64().unwrap() < 30.0, "{json}");
    // At most one attempt per slot every 10 ms once refused: a few hundred, not a flood.
    assert!(
        json["errors"]["connect"].as_i64().unwrap() < 4 * 150,
        "{json}"
    );
}
