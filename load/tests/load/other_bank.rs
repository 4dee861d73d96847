//! `bank` against a bank that is not racebank: other routes (the debited account in the path),
//! other body fields, the balances nested under another name, one set-up request per account, an
//! API key, and no `/stats`. The same checks must find the racy one losing money and call the
//! guarded one consistent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clap::Parser;
use racebank_load::{BankConclusion, BankLoad, Cli, Command, Render as _};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const KEY: &str = "k-77";

/// The other bank: a lock around read -> work -> write when `guarded`.
struct Bank {
    guarded: bool,
    cents: Mutex<BTreeMap<String, i64>>,
    section: tokio::sync::Mutex<()>,
}

type Answer = (StatusCode, Json<Value>);

/// Starts the other bank; returns its base URL.
async fn spawn_other_bank(guarded: bool) -> String {
    let bank = Arc::new(Bank {
        guarded,
        cents: Mutex::new(BTreeMap::new()),
        section: tokio::sync::Mutex::new(()),
    });
    let app = Router::new()
        .route("/v2/accts", get(read_all))
        .route("/v2/accts/{name}", put(open))
        .route("/v2/accts/{name}/moves", post(transfer))
        .with_state(bank);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn authorised(headers: &HeaderMap) -> Result<(), Answer> {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(KEY) {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, Json(json!({"error": "no key"}))))
    }
}

async fn read_all(State(bank): State<Arc<Bank>>, headers: HeaderMap) -> Answer {
    if let Err(answer) = authorised(&headers) {
        return answer;
    }
    let accts: Vec<Value> = bank
        .cents
        .lock()
        .unwrap()
        .iter()
        .map(|(name, cents)| json!({"name": name, "cents": cents}))
        .collect();
    (StatusCode::OK, Json(json!({"data": {"accts": accts}})))
}

async fn open(
    State(bank): State<Arc<Bank>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    if let Err(answer) = authorised(&headers) {
        return answer;
    }
    let Some(cents) = body["cents"].as_i64() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "cents"})),
        );
    };
    bank.cents.lock().unwrap().insert(name, cents);
    (StatusCode::CREATED, Json(json!({})))
}

/// Reads both sides, works 1 ms, writes both: blind writes from stale reads unless `guarded`.
async fn transfer(
    State(bank): State<Arc<Bank>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Answer {
    if let Err(answer) = authorised(&headers) {
        return answer;
    }
    let (Some(target), Some(cents)) = (body["dst"].as_str(), body["cents"].as_i64()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "dst, cents"})),
        );
    };
    let _guard = if bank.guarded {
        Some(bank.section.lock().await)
    } else {
        None
    };
    let read = |name: &str| bank.cents.lock().unwrap().get(name).copied();
    let (Some(from), Some(to)) = (read(&source), read(target)) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such account"})),
        );
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    if from < cents {
        return (StatusCode::CONFLICT, Json(json!({"error": "insufficient"})));
    }
    let mut all = bank.cents.lock().unwrap();
    all.insert(source, from - cents);
    all.insert(target.to_string(), to + cents);
    (StatusCode::OK, Json(json!({"ok": true})))
}

/// The flags that describe the other bank.
const SHAPE: [&str; 16] = [
    "-H",
    "X-Api-Key: k-77",
    "--transfer",
    "POST /v2/accts/{from}/moves",
    "--transfer-body",
    r#"{"dst": "{to}", "cents": {amount}}"#,
    "--read-all",
    "GET /v2/accts",
    "--accounts-pointer",
    "/data/accts",
    "--id-pointer",
    "/name",
    "--balance-pointer",
    "/cents",
    "--setup",
    "PUT /v2/accts/{account}",
];

fn bank_opts(url: &str, extra: &[&str]) -> BankLoad {
    let mut argv = vec!["racebank-load", "bank", url, "--no-progress"];
    argv.extend_from_slice(&SHAPE);
    argv.extend_from_slice(&["--setup-body", r#"{"cents": {balance}}"#]);
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
    let Some(Command::Bank(opts)) = cli.command else {
        panic!("expected bank");
    };
    opts.to_bank().expect("a valid bank API")
}

/// Margin: as `bank.rs`'s unguarded test (1 ms between reads and writes, 16 in flight, 2000
/// requests): hundreds of erased writes; the test fails only if every one of them left the total
/// right and every account in its range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_banks_racy_transfers_are_found_to_create_or_destroy_money() {
    let url = spawn_other_bank(false).await;

    let report = racebank_load::bank(bank_opts(&url, &["-n", "2000", "-c", "16"]))
        .await
        .expect("bank");

    crate::bank::assert_money_lost("the other bank, unguarded", &report);
    assert!(report.reads.ok > 0, "{}", report.to_text());
    assert!(
        report.server_stats.is_none(),
        "no /stats is read from another API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_banks_guarded_transfers_are_called_consistent() {
    let url = spawn_other_bank(true).await;

    let report = racebank_load::bank(bank_opts(&url, &["-n", "600", "-c", "16"]))
        .await
        .expect("bank");

    assert_eq!(
        report.conclusion,
        BankConclusion::Consistent,
        "{}",
        report.to_text()
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.verdict.final_total, Some(100));
    assert!(report.reads.ok > 0 && report.transfers.applied.count > 0);
    assert_eq!(report.errors.total(), 0, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_the_run_at_the_set_up_in_one_line() {
    let url = spawn_other_bank(true).await;
    let mut load = bank_opts(&url, &["-n", "10"]);
    load.headers = vec!["X-Api-Key: wrong".parse().unwrap()];

    let error = racebank_load::bank(load).await.expect_err("unauthorised");

    let text = format!("{error:#}");
    assert!(text.contains("PUT") && text.contains("401"), "{text}");
}

#[test]
fn the_config_file_describes_the_other_bank_as_the_flags_do() {
    let toml = r#"
        header = ["X-Api-Key: k-77"]
        transfer = "POST /v2/accts/{from}/moves"
        transfer-body = '{"dst": "{to}", "cents": {amount}}'
        read-all = "GET /v2/accts"
        accounts-pointer = "/data/accts"
        id-pointer = "/name"
        balance-pointer = "/cents"
        setup = "PUT /v2/accts/{account}"
        setup-body = '{"cents": {balance}}'
    "#;
    let path =
        std::env::temp_dir().join(format!("racebank-other-bank-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let argv = [
        "racebank-load",
        "bank",
        "http://127.0.0.1:1",
        "--config",
        path.to_str().unwrap(),
    ];
    let args =
        racebank_load::expand_config(argv.iter().copied().map(std::ffi::OsString::from).collect())
            .unwrap();
    let _ = std::fs::remove_file(&path);
    let cli = Cli::try_parse_from(args).unwrap();
    let Some(Command::Bank(opts)) = cli.command else {
        panic!("expected bank");
    };
    let from_file = opts.to_bank().unwrap();
    assert_eq!(from_file.api, bank_opts("http://127.0.0.1:1", &[]).api);
    assert!(!from_file.api.racebank);
}
