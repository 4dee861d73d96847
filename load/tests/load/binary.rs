//! The built binary: exit codes and the JSON document.

use std::process::{Command, Output};

use crate::helpers::{spawn_server, wait_for_deposits};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_racebank-load");

/// Runs the built binary with `args` and collects what it printed.
pub(crate) async fn racebank_load(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output())
        .await
        .expect("join")
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_run_exits_0_and_prints_every_json_field() {
    let server = spawn_server("mutex", "none", 0).await;

    let output = racebank_load(&["--url", &server.url, "-n", "500", "-c", "16", "--json"]).await;
    server.stop().await;

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON document");
    for field in [
        "requests",
        "rps",
        "latency_ms",
        "expected_balance",
        "expected_min",
        "expected_max",
        "initial_balance",
        "final_balance",
        "lost_amount",
        "overdraft",
        "duplicates",
        "consistent",
        "ok",
        "refused",
        "errors",
        "status_codes",
        "duration_s",
        "server_stats",
    ] {
        assert!(json.get(field).is_some(), "missing `{field}` in {json}");
    }
    for field in ["min", "p50", "p90", "p99", "p99_9", "max"] {
        assert!(
            json["latency_ms"][field].is_number(),
            "latency_ms.{field} in {json}"
        );
    }
    assert_eq!(json["requests"], 500);
    assert_eq!(json["expected_balance"], 2500);
    assert_eq!(json["final_balance"], 2500);
    assert_eq!(json["lost_amount"], 0);
    assert_eq!(json["duplicates"], 0);
    assert_eq!(json["consistent"], true);
    assert_eq!(json["status_codes"]["200"], 500);
    assert_eq!(json["server_stats"]["agrees"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_updates_exit_1() {
    let server = spawn_server("unguarded", "1ms", 0).await;

    let output = racebank_load(&["--url", &server.url, "-n", "300", "-c", "32"]).await;
    server.stop().await;

    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Consistent:") && text.contains("NO"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_server_exits_2_with_one_line() {
    let output = racebank_load(&["--url", "http://127.0.0.1:1", "-n", "10"]).await;

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("no server answers"), "{stderr}");
    assert!(stderr.contains("racebank-load demo"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_the_report_of_what_was_sent_with_requests_in_flight_indeterminate() {
    // Each deposit holds the lock for 20 ms: four are always in flight, and the run would take
    // over half an hour.
    let server = spawn_server("mutex", "20ms", 0).await;
    let child = Command::new(BIN)
        .args(["--url", &server.url, "-n", "100000", "-c", "4", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    wait_for_deposits(&server.url, 3).await;

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("the binary ends");
    server.stop().await;

    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the report");
    assert_eq!(json["interrupted"], true);
    assert!(json["requests"].as_u64().unwrap() < 100_000, "{json}");
    assert!(
        json["errors"]["interrupted"].as_u64().unwrap() >= 1,
        "{json}"
    );
    assert_eq!(
        json["indeterminate"]["deposits"], json["errors"]["interrupted"],
        "{json}"
    );
    assert_eq!(json["verdict"], "consistent", "{json}");
}

#[tokio::test]
async fn a_bad_flag_exits_2_with_one_line() {
    for args in [
        &["--withdraw-ratio", "2"][..],
        &["-c", "0"],
        &["-n", "10", "-z", "1s"],
        &["--amount", "5..1"],
        &["demo", "--modes", "spinlock"],
        &["--no-such-flag"],
    ] {
        let output = racebank_load(args).await;

        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("racebank-load: "), "{args:?}: {stderr}");
    }
}
