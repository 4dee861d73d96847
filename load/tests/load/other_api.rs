//! racebank-load against an account that is not racebank: other routes, other body fields, the
//! balance nested in the answer (or absent), bearer auth, and no `/stats`.

use racebank_load::Render as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use racebank_load::Conclusion;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::opts;

const TOKEN: &str = "Bearer s3cret";
const ACCOUNT: &str = "acc-42";

/// How the other server behaves.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// A lock around read -> work -> write; without it, concurrent requests erase each other.
    guarded: bool,
    /// Whether deposits and withdrawals answer with the balance.
    answers_balance: bool,
    /// Answer 503 (plain text) to every deposit but one in this many.
    unavailable_but_one_in: Option<u64>,
}

pub(crate) const RACY: Shape = Shape {
    guarded: false,
    answers_balance: true,
    unavailable_but_one_in: None,
};

struct Account {
    shape: Shape,
    balance: Mutex<i64>,
    section: tokio::sync::Mutex<()>,
    deposits: AtomicU64,
}

/// Starts the other server with an opening balance; returns its base URL.
pub(crate) async fn spawn_other(shape: Shape, initial_balance: i64) -> String {
    let account = Arc::new(Account {
        shape,
        balance: Mutex::new(initial_balance),
        section: tokio::sync::Mutex::new(()),
        deposits: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/api/v1/accounts/{id}", get(read_balance))
        .route("/api/v1/accounts/{id}/deposits", post(deposit))
        .route("/api/v1/accounts/{id}/withdrawals", post(withdraw))
        .with_state(account);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

type Answer = (StatusCode, Json<Value>);

fn check(headers: &HeaderMap, id: &str) -> Result<(), Answer> {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        ));
    }
    if id != ACCOUNT {
        return Err((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such account"})),
        ));
    }
    Ok(())
}

async fn read_balance(
    State(account): State<Arc<Account>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    if let Err(answer) = check(&headers, &id) {
        return answer;
    }
    let balance = *account.balance.lock().unwrap();
    (
        StatusCode::OK,
        Json(json!({"data": {"id": id, "balance": balance}})),
    )
}

async fn deposit(
    State(account): State<Arc<Account>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    if let Some(one_in) = account.shape.unavailable_but_one_in {
        if account.deposits.fetch_add(1, Ordering::SeqCst) % one_in != 0 {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "busy"})),
            );
        }
    }
    change(account, id, headers, body, 1).await
}

async fn withdraw(
    State(account): State<Arc<Account>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    change(account, id, headers, body, -1).await
}

/// Read, work, write: the classic lost update unless `guarded`.
async fn change(
    account: Arc<Account>,
    id: String,
    headers: HeaderMap,
    body: Value,
    sign: i64,
) -> Answer {
    if let Err(answer) = check(&headers, &id) {
        return answer;
    }
    let Some(amount) = body["amount_cents"].as_i64().filter(|a| *a > 0) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "amount_cents must be a positive integer"})),
        );
    };
    let _guard = if account.shape.guarded {
        Some(account.section.lock().await)
    } else {
        None
    };
    let read = *account.balance.lock().unwrap();
    // The slow part of a real handler: every concurrent request reads before any writes.
    tokio::time::sleep(Duration::from_millis(1)).await;
    if sign < 0 && amount > read {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "insufficient funds"})),
        );
    }
    let written = read + sign * amount;
    *account.balance.lock().unwrap() = written;
    let data = if account.shape.answers_balance {
        json!({"data": {"balance": written}})
    } else {
        json!({"data": {"status": "accepted"}})
    };
    (StatusCode::OK, Json(data))
}

/// The flags that describe the other API.
fn shape_args() -> Vec<&'static str> {
    vec![
        "-H",
        "Authorization: Bearer s3cret",
        "--deposit",
        "POST /api/v1/accounts/{account}/deposits",
        "--withdraw",
        "POST /api/v1/accounts/{account}/withdrawals",
        "--balance",
        "GET /api/v1/accounts/{account}",
        "--body",
        r#"{"amount_cents": {amount}}"#,
        "--account",
        ACCOUNT,
        "--balance-pointer",
        "/data/balance",
    ]
}

fn args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = shape_args();
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_updates_are_found_in_another_api_from_its_nested_answers() {
    let url = spawn_other(RACY, 0).await;

    let report = racebank_load::run(opts(&url, &args(&["-n", "400", "-c", "32"])))
        .await
        .expect("run");
    // `cargo test -p racebank-load other_api -- --nocapture` shows it (docs/load-generator.md pastes it).
    println!("{}", report.to_text());

    assert_eq!(report.summary.ok, 400, "{}", report.to_text());
    assert_eq!(
        report.summary.verdict,
        Conclusion::Lost,
        "{}",
        report.to_text()
    );
    assert_eq!(report.summary.expected_balance, Some(2000));
    assert_eq!(
        report.summary.lost_amount,
        report.summary.final_balance.map(|b| 2000 - i128::from(b))
    );
    // 32 requests at a time each sleep 1 ms between read and write: they overlap, always.
    assert!(
        report.summary.duplicates.unwrap_or(0) > 0,
        "{}",
        report.to_text()
    );
    assert!(
        report.summary.server_stats.is_none(),
        "this API has no /stats"
    );
    assert!(!report
        .summary
        .checks
        .iter()
        .any(|check| check.contains("/stats")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_other_api_is_consistent_under_mixed_load() {
    let shape = Shape {
        guarded: true,
        ..RACY
    };
    let url = spawn_other(shape, 10_000).await;
    let extra = [
        "-n",
        "300",
        "-c",
        "16",
        "--withdraw-ratio",
        "0.5",
        "--amount",
        "1..100",
    ];

    let report = racebank_load::run(opts(&url, &args(&extra)))
        .await
        .expect("run");

    assert_eq!(
        report.summary.verdict,
        Conclusion::Consistent,
        "{}",
        report.to_text()
    );
    assert_eq!(report.summary.ok + report.summary.refused, 300);
    assert_eq!(
        report.summary.errors.total(),
        0,
        "{:?}",
        report.summary.errors
    );
    assert_eq!(
        report.summary.expected_balance,
        report.summary.final_balance.map(i128::from)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_balance_are_judged_from_the_balance_before_and_after() {
    let shape = Shape {
        answers_balance: false,
        ..RACY
    };
    let url = spawn_other(shape, 0).await;

    let report = racebank_load::run(opts(&url, &args(&["-n", "300", "-c", "32"])))
        .await
        .expect("run");

    assert!(!report.summary.answers_carry_balance);
    assert_eq!(
        report.summary.errors.total(),
        0,
        "no balance is not an error here"
    );
    assert_eq!(report.summary.duplicates, None, "nothing to compare");
    assert_eq!(report.summary.checks, ["expected range", "overdraft"]);
    assert_eq!(
        report.summary.verdict,
        Conclusion::Lost,
        "{}",
        report.to_text()
    );
    assert!(report.summary.lost_amount > Some(0));
    assert!(report.to_text().contains("carry no balance"));

    // The same answers from a guarded server: consistent, with the same limited checks.
    let url = spawn_other(
        Shape {
            guarded: true,
            ..shape
        },
        0,
    )
    .await;
    let report = racebank_load::run(opts(&url, &args(&["-n", "100", "-c", "16"])))
        .await
        .expect("run");
    assert_eq!(
        report.summary.verdict,
        Conclusion::Consistent,
        "{}",
        report.to_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_exit_2_with_one_line() {
    let url = spawn_other(RACY, 0).await;
    let mut argv = vec!["--url", url.as_str(), "-n", "10"];
    let mut shape = shape_args();
    shape[1] = "Authorization: Bearer wrong";
    argv.extend(shape);

    let output = crate::binary::racebank_load(&argv).await;

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("401 Unauthorized"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_fail_the_run_only_when_a_limit_is_set() {
    // 49 of every 50 deposits answer 503: the rest are consistent, the run is not healthy.
    let shape = Shape {
        guarded: true,
        unavailable_but_one_in: Some(50),
        ..RACY
    };
    let url = spawn_other(shape, 0).await;
    let run = |extra: &'static [&'static str]| {
        let mut argv = vec!["--url".to_string(), url.clone(), "-n".into(), "500".into()];
        argv.extend(shape_args().into_iter().map(String::from));
        argv.extend(extra.iter().map(ToString::to_string));
        async move {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            crate::binary::racebank_load(&argv).await
        }
    };

    let gated = run(&["--max-error-rate", "0.1", "--json"]).await;
    let ungated = run(&[]).await;

    assert_eq!(
        gated.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&gated.stderr)
    );
    let json: Value = serde_json::from_slice(&gated.stdout).expect("JSON");
    assert_eq!(json["too_many_errors"], true);
    assert_eq!(json["verdict"], "consistent");
    assert!(json["error_rate"].as_f64().unwrap() > 0.9, "{json}");
    assert_eq!(ungated.status.code(), Some(0));
    let text = String::from_utf8_lossy(&ungated.stdout);
    assert!(text.contains("no --max-error-rate set"), "{text}");
}

/// What `racebank-load ARGS` prints on stderr, one line expected, with exit status 2.
async fn one_line_error(argv: &[&str]) -> String {
    let output = crate::binary::racebank_load(argv).await;
    assert_eq!(output.status.code(), Some(2), "{argv:?}");
    String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string()
}

/// load-generator.md's block of one-line errors (marked `<!-- shape checked: racebank-load's
/// one-line errors ..-->`): "no server answers", on a port the test found free where the doc
/// says 3000, and refused credentials, against this file's other API with a wrong token. Each
/// line is compared with its numbers (the ports) blanked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_one_line_errors_have_the_shape_of_the_real_ones() {
    let blocks = crate::docs::marked_blocks("<!-- shape checked: racebank-load's one-line errors");
    let [(place, _, lines)] = blocks.as_slice() else {
        panic!("one marked block of one-line errors in the docs: {blocks:?}");
    };
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let nobody = format!("http://{}", free.local_addr().expect("local addr"));
    drop(free);
    let other = spawn_other(RACY, 0).await;
    let mut wrong = vec!["--url", other.as_str(), "-n", "10"];
    let mut shape = shape_args();
    shape[1] = "Authorization: Bearer wrong";
    wrong.extend(shape);
    let actual = [
        one_line_error(&["--url", &nobody, "-n", "10"]).await,
        one_line_error(&wrong).await,
    ];
    let shown: Vec<&String> = lines.iter().filter(|l| !l.starts_with("$ ")).collect();
    assert_eq!(shown.len(), 2, "{place}: two commands, one line each");
    for (doc, real) in shown.iter().zip(&actual) {
        assert_eq!(
            crate::doc_runs::blanked(doc),
            crate::doc_runs::blanked(real),
            "{place}: the doc's line is not shaped like the real one"
        );
    }
}
