//! `bank` against a bank that is not racebank: other routes (the debited account in the path),
//! other body fields, the balances nested under another name, one set-up request per account, an
//! API key, and no `/stats`. The same checks must find the racy one losing money and call the
//! guarded one consistent, and the rounds of `write-skew` and `double-spend`, through its own
//! withdrawal route, body and answer, must find the racy one's write skew and double spends and
//! none in the guarded one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use clap::Parser;
use racebank_load::{BankConclusion, BankLoad, BankOpts, Cli, Command, Render as _, RoundsLoad};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const KEY: &str = "k-77";

/// The other bank's household: a debit of either may take it below zero alone, as long as the
/// two together stay at or above zero.
const HOUSEHOLD: [&str; 2] = ["ann", "ben"];

/// The other bank: a lock around read -> work -> write when `guarded`.
struct Bank {
    guarded: bool,
    cents: Mutex<BTreeMap<String, i64>>,
    section: tokio::sync::Mutex<()>,
    meeting: Rendezvous,
}

/// Holds an unguarded debit between its read and its write until another one arrives (or 1 s
/// passes, for a lone one): the two debits of a round both read before either writes, so the race
/// is exact, every round, as racebank's `--work rendezvous:2` makes it.
#[derive(Default)]
struct Rendezvous {
    waiting: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Rendezvous {
    async fn meet(&self) {
        let other = {
            let mut waiting = self.waiting.lock().unwrap();
            if let Some(first) = waiting.take() {
                let _ = first.send(());
                return;
            }
            let (arrived, other) = tokio::sync::oneshot::channel();
            *waiting = Some(arrived);
            other
        };
        if tokio::time::timeout(Duration::from_secs(1), other)
            .await
            .is_err()
        {
            self.waiting.lock().unwrap().take();
        }
    }
}

type Answer = (StatusCode, Json<Value>);

/// Starts the other bank; returns its base URL.
async fn spawn_other_bank(guarded: bool) -> String {
    let bank = Arc::new(Bank {
        guarded,
        cents: Mutex::new(BTreeMap::new()),
        section: tokio::sync::Mutex::new(()),
        meeting: Rendezvous::default(),
    });
    let app = Router::new()
        .route("/v2/accts", get(read_all))
        .route("/v2/accts/{name}", put(open))
        .route("/v2/accts/{name}/moves", post(transfer))
        .route("/v2/accts/{name}/debits", post(debit))
        .layer(axum::middleware::from_fn(authorised))
        .with_state(bank);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// An error answer of `status`, saying `what`.
fn failure(status: StatusCode, what: &str) -> Answer {
    (status, Json(json!({ "error": what })))
}

impl Bank {
    /// The lock around read -> work -> write, when guarded.
    async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.guarded {
            Some(self.section.lock().await)
        } else {
            None
        }
    }
}

/// Every route wants the API key.
async fn authorised(request: Request, next: Next) -> Response {
    if request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        == Some(KEY)
    {
        next.run(request).await
    } else {
        failure(StatusCode::UNAUTHORIZED, "no key").into_response()
    }
}

async fn read_all(State(bank): State<Arc<Bank>>) -> Answer {
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
    Json(body): Json<Value>,
) -> Answer {
    let Some(cents) = body["cents"].as_i64() else {
        return failure(StatusCode::UNPROCESSABLE_ENTITY, "cents");
    };
    bank.cents.lock().unwrap().insert(name, cents);
    (StatusCode::CREATED, Json(json!({})))
}

/// Reads both sides, works 1 ms, writes both: blind writes from stale reads unless `guarded`.
async fn transfer(
    State(bank): State<Arc<Bank>>,
    Path(source): Path<String>,
    Json(body): Json<Value>,
) -> Answer {
    let (Some(target), Some(cents)) = (body["dst"].as_str(), body["cents"].as_i64()) else {
        return failure(StatusCode::UNPROCESSABLE_ENTITY, "dst, cents");
    };
    let _guard = bank.enter().await;
    let read = |name: &str| bank.cents.lock().unwrap().get(name).copied();
    let (Some(from), Some(to)) = (read(&source), read(target)) else {
        return failure(StatusCode::NOT_FOUND, "no such account");
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    if from < cents {
        return failure(StatusCode::CONFLICT, "insufficient");
    }
    let mut all = bank.cents.lock().unwrap();
    all.insert(source, from - cents);
    all.insert(target.to_string(), to + cents);
    (StatusCode::OK, Json(json!({"ok": true})))
}

/// Reads what must cover the debit (the household's two balances, or the account's own), meets
/// another debit (unguarded) or works 1 ms (guarded, under the lock), then writes the account's
/// own balance from its read: two unguarded debits of a household each see the other's money
/// (write skew), two of one account each see the whole balance (double spend).
async fn debit(
    State(bank): State<Arc<Bank>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Answer {
    let Some(cents) = body["debit"]["cents"].as_i64() else {
        return failure(StatusCode::UNPROCESSABLE_ENTITY, "debit.cents");
    };
    let _guard = bank.enter().await;
    let covering = if HOUSEHOLD.contains(&name.as_str()) {
        HOUSEHOLD.map(String::from).to_vec()
    } else {
        vec![name.clone()]
    };
    let read: Option<Vec<i64>> = {
        let all = bank.cents.lock().unwrap();
        covering.iter().map(|name| all.get(name).copied()).collect()
    };
    let (Some(read), Some(own)) = (read, bank.cents.lock().unwrap().get(&name).copied()) else {
        return failure(StatusCode::NOT_FOUND, "no such account");
    };
    if bank.guarded {
        tokio::time::sleep(Duration::from_millis(1)).await;
    } else {
        bank.meeting.meet().await;
    }
    if read.iter().sum::<i64>() < cents {
        return failure(StatusCode::CONFLICT, "insufficient");
    }
    bank.cents.lock().unwrap().insert(name.clone(), own - cents);
    let left = json!({"name": name, "cents": own - cents});
    (StatusCode::OK, Json(json!({"data": {"acct": left}})))
}

/// The flags that describe the other bank.
const SHAPE: [&str; 22] = [
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
    "--withdraw",
    "POST /v2/accts/{account}/debits",
    "--withdraw-body",
    r#"{"debit": {"cents": {amount}}}"#,
    "--withdraw-balance-pointer",
    "/data/acct/cents",
];

/// `bank URL`, the other bank's shape, then `extra` (whose flags replace the shape's).
fn opts(url: &str, extra: &[&str]) -> BankOpts {
    let mut argv = vec!["racebank-load", "bank", url, "--no-progress"];
    for pair in SHAPE.chunks(2) {
        if !extra.contains(&pair[0]) {
            argv.extend_from_slice(pair);
        }
    }
    argv.extend_from_slice(&["--setup-body", r#"{"cents": {balance}}"#]);
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
    let Some(Command::Bank(opts)) = cli.command else {
        panic!("expected bank");
    };
    *opts
}

fn bank_opts(url: &str, extra: &[&str]) -> BankLoad {
    opts(url, extra).to_bank().expect("a valid bank API")
}

fn rounds_opts(url: &str, extra: &[&str]) -> RoundsLoad {
    opts(url, extra).to_rounds().expect("a valid rounds run")
}

/// The household's write-skew rounds, 5 of them.
const SKEW: [&str; 6] = [
    "--scenario",
    "write-skew",
    "--household",
    "ann,ben",
    "--rounds",
    "5",
];

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

/// The config file is load-generator.md's, so the doc cannot drift from the bank it describes.
#[test]
fn the_docs_config_file_describes_the_other_bank_as_the_flags_do() {
    let blocks = crate::docs::marked_blocks("<!-- checked: other_bank.rs's config file");
    let (_, _, lines) = blocks
        .first()
        .expect("load-generator.md's config file of the other bank");
    let toml = lines.join("\n");
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

/// Exact: the unguarded bank's two debits of a round meet between their reads and their writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_banks_racy_household_is_found_with_write_skew_and_its_guarded_one_holds() {
    for guarded in [false, true] {
        let url = spawn_other_bank(guarded).await;

        let report = racebank_load::bank_rounds(rounds_opts(&url, &SKEW))
            .await
            .expect("the rounds ran");

        let check = &report.check;
        if guarded {
            assert_eq!(
                (check.anomalies, check.held),
                (0, 5),
                "{}",
                report.to_text()
            );
            assert_eq!((check.applied, check.refused), (5, 5));
            assert_eq!(report.exit_code(), 0);
        } else {
            assert_eq!(check.anomalies, 5, "{}", report.to_text());
            assert_eq!(report.exit_code(), 1);
            let line = report.verdict_line();
            assert!(
                line.starts_with("NOT CONSISTENT: write skew in 5 of 5 rounds")
                    && line.contains("ann -10 and ben -10: household -20"),
                "{line}"
            );
        }
    }
}

/// Exact as above: two debits of 9 from 10 a round both read 10 in the unguarded bank; the guarded
/// one takes 1 to 16 at once through one lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_banks_racy_account_pays_twice_and_its_guarded_one_once() {
    let url = spawn_other_bank(false).await;
    let double = ["--scenario", "double-spend", "--account", "solo"];
    let twice = [&double[..], &["--withdrawals", "2", "--rounds", "4"]].concat();

    let report = racebank_load::bank_rounds(rounds_opts(&url, &twice))
        .await
        .expect("the rounds ran");

    assert_eq!(report.check.anomalies, 4, "{}", report.to_text());
    assert!(report
        .verdict_line()
        .starts_with("NOT CONSISTENT: double spend in 4 of 4 rounds"));

    let url = spawn_other_bank(true).await;
    let report = racebank_load::bank_rounds(rounds_opts(
        &url,
        &[&double[..], &["--rounds", "16"]].concat(),
    ))
    .await
    .expect("the rounds ran");

    let check = &report.check;
    assert_eq!(
        (check.anomalies, check.held, check.applied),
        (0, 16, 16),
        "{}",
        report.to_text()
    );
    assert_eq!(report.exit_code(), 0);
}

/// A bank whose debits answer no balance where the pointer says: each 2xx counts as applied with
/// its balance unknown, and write skew is judged by the amounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_that_answers_no_balance_is_judged_by_the_amounts_withdrawn() {
    let silent = [&SKEW[..], &["--withdraw-balance-pointer", "/receipt/left"]].concat();
    for guarded in [false, true] {
        let url = spawn_other_bank(guarded).await;

        let report = racebank_load::bank_rounds(rounds_opts(&url, &silent))
            .await
            .expect("the rounds ran");

        let (check, line) = (&report.check, report.verdict_line());
        if guarded {
            assert_eq!((check.anomalies, check.held), (0, 5), "{line}");
        } else {
            assert_eq!(check.anomalies, 5, "{line}");
            assert!(
                line.contains("ann ? and ben ?: household -20 by the amounts"),
                "{line}"
            );
        }
    }
}

#[test]
fn a_withdrawal_template_that_cannot_work_is_refused_in_one_line() {
    for (flag, value, says) in [
        ("--withdraw", "POST /v2/accts/{from}/debits", "names {from}"),
        (
            "--withdraw-body",
            r#"{"cents": {balance}}"#,
            "names {balance}",
        ),
        ("--withdraw-body", "cents={amount}", "is not JSON"),
        (
            "--withdraw-balance-pointer",
            "data.acct",
            "is not a JSON pointer",
        ),
    ] {
        let error = opts("http://127.0.0.1:1", &[&SKEW[..], &[flag, value]].concat())
            .to_rounds()
            .expect_err(value);
        let text = format!("{error:#}");
        assert!(
            text.starts_with(flag) && text.contains(says) && !text.contains('\n'),
            "{flag} {value}: {text}"
        );
    }
}
