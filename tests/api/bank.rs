//! The bank in memory, over HTTP: the anomalies only two accounts can show, made exact with
//! `rendezvous:2`, and the modes that prevent them.

use racebank::{AccountConfig, AccountId, BankSpec, Config, LockOrder, Mode, WorkSpec};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};

/// A bank of `accounts` (id, opening balance) grouped in `households`, for every store's tests.
pub(crate) fn bank_spec(accounts: &[(&str, i64)], households: &[&[&str]]) -> BankSpec {
    let id = |name: &str| name.parse::<AccountId>().expect("a test names valid ids");
    BankSpec::new(
        accounts
            .iter()
            .map(|&(name, opening)| (id(name), opening))
            .collect(),
        &households
            .iter()
            .map(|members| members.iter().map(|&m| id(m)).collect())
            .collect::<Vec<_>>(),
    )
    .expect("a test names a valid bank")
}

/// A memory bank of `accounts` (id, opening balance), households of ids, in `mode`.
pub(crate) fn bank_config(
    mode: &str,
    work: &str,
    accounts: &[(&str, i64)],
    households: &[&[&str]],
) -> Config {
    let mut account = AccountConfig::memory(
        mode.parse::<Mode>().unwrap(),
        work.parse::<WorkSpec>().unwrap(),
    );
    account.bank = Some(bank_spec(accounts, households));
    Config {
        account,
        ..Config::default()
    }
}

/// A memory bank of `accounts` in `mode`, its requests doing `work`.
async fn spawn_bank(mode: &str, work: &str, accounts: &[(&str, i64)]) -> TestApp {
    spawn_with(bank_config(mode, work, accounts, &[])).await
}

/// `POST /transfers`.
pub(crate) async fn transfer(app: &TestApp, from: &str, to: &str, amount: i64) -> Response {
    let body = json!({"from": from, "to": to, "amount": amount}).to_string();
    app.post_raw("/transfers", Some("application/json"), &body)
        .await
}

/// `POST /accounts/{id}/withdraw`.
pub(crate) async fn withdraw_from(app: &TestApp, id: &str, amount: i64) -> Response {
    let body = json!({ "amount": amount }).to_string();
    app.post_raw(
        &format!("/accounts/{id}/withdraw"),
        Some("application/json"),
        &body,
    )
    .await
}

/// `GET /stats`'s `bank` block.
pub(crate) async fn bank_stats(app: &TestApp) -> Value {
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    stats["bank"].clone()
}

/// Each account's balance, by id, from `GET /accounts`.
pub(crate) async fn balances(app: &TestApp) -> Value {
    let body: Value = app.get("/accounts").await.json().await.unwrap();
    let mut balances = serde_json::Map::new();
    for account in body["accounts"].as_array().unwrap() {
        balances.insert(
            account["id"].as_str().unwrap().to_string(),
            account["balance"].clone(),
        );
    }
    Value::Object(balances)
}

/// The identity the bank keeps at any quiet moment, bank-wide and per account.
pub(crate) fn assert_ledger_explains_total(bank: &Value) {
    let n = |v: &Value| v.as_i64().unwrap();
    assert_eq!(
        n(&bank["total"]),
        n(&bank["expected_total"]) + n(&bank["money_created"]) - n(&bank["money_destroyed"]),
        "total == expected_total + created - destroyed: {bank:#}"
    );
    for account in bank["accounts"].as_array().unwrap() {
        assert_eq!(
            n(&account["balance"]),
            n(&account["expected_balance"]) + n(&account["money_created"])
                - n(&account["money_destroyed"]),
            "{account:#}"
        );
    }
}

const THREE: &[(&str, i64)] = &[("a", 100), ("b", 100), ("c", 100)];

#[tokio::test]
async fn unguarded_transfers_sharing_an_account_erase_one_write_to_it_and_the_total_moves_by_the_amount(
) {
    let app = spawn_bank("unguarded", "rendezvous:2", THREE).await;

    let (first, second) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "c", 10));

    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let bank = bank_stats(&app).await;
    assert_eq!(bank["lost_updates"], 1, "{bank:#}");
    assert_eq!(
        bank["accounts"][1]["lost_updates"], 1,
        "the one erased write is b's: {bank:#}"
    );
    assert_eq!(bank["expected_total"], 300);
    let (created, destroyed) = (
        bank["money_created"].as_i64().unwrap(),
        bank["money_destroyed"].as_i64().unwrap(),
    );
    assert_eq!(
        created + destroyed,
        10,
        "one transfer's amount, one way: {bank:#}"
    );
    assert_eq!(bank["total"].as_i64().unwrap(), 300 + created - destroyed);
    assert_ledger_explains_total(&bank);
}

#[tokio::test]
async fn unguarded_same_direction_transfers_keep_the_total_yet_leave_both_accounts_wrong() {
    let app = spawn_bank("unguarded", "rendezvous:2", THREE).await;

    let (first, second) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "a", "b", 10));

    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let bank = bank_stats(&app).await;
    assert_eq!(bank["total"], 300, "the total is kept: {bank:#}");
    assert_eq!(bank["expected_total"], 300);
    assert_eq!(balances(&app).await, json!({"a": 90, "b": 110, "c": 100}));
    assert_eq!(bank["accounts"][0]["expected_balance"], 80);
    assert_eq!(
        bank["accounts"][0]["money_created"], 10,
        "a's second debit erased the first"
    );
    assert_eq!(bank["accounts"][1]["expected_balance"], 120);
    assert_eq!(
        bank["accounts"][1]["money_destroyed"], 10,
        "b's second credit erased the first"
    );
    assert_ledger_explains_total(&bank);
}

#[tokio::test]
async fn safe_modes_lose_nothing_in_the_same_races() {
    for mode in ["mutex", "account-locks", "optimistic", "atomic"] {
        let app = spawn_bank(mode, "rendezvous:2", THREE).await;

        let (first, second) =
            tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "c", 10));
        let (third, fourth) =
            tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "a", "b", 10));

        for response in [first, second, third, fourth] {
            assert_eq!(response.status(), StatusCode::OK, "{mode}");
        }
        let bank = bank_stats(&app).await;
        assert_eq!(bank["lost_updates"], 0, "{mode}: {bank:#}");
        assert_eq!(
            balances(&app).await,
            json!({"a": 70, "b": 120, "c": 110}),
            "{mode}"
        );
        assert_ledger_explains_total(&bank);
    }
}

#[tokio::test]
async fn account_locks_in_request_order_deadlock_once_and_answer_503_while_id_order_never_does() {
    for (order, deadlocks) in [(LockOrder::Request, 1), (LockOrder::Id, 0)] {
        let mut config = bank_config("account-locks", "rendezvous:2", THREE, &[]);
        config.account.lock_order = order;
        let app = spawn_with(config).await;

        let started = std::time::Instant::now();
        let (first, second) =
            tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "a", 10));

        let mut statuses = [first.status(), second.status()];
        statuses.sort();
        let bank = bank_stats(&app).await;
        assert_eq!(bank["deadlocks"], deadlocks, "{order}: {bank:#}");
        if deadlocks == 1 {
            assert_eq!(
                statuses,
                [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE],
                "{order}"
            );
            let loser = if first.status() == StatusCode::OK {
                second
            } else {
                first
            };
            let problem: Value = loser.json().await.unwrap();
            assert_eq!(
                problem["type"], "urn:racebank:problem:deadlock",
                "{problem:#}"
            );
        } else {
            assert_eq!(statuses, [StatusCode::OK, StatusCode::OK], "{order}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{order}: never a hang"
        );
        assert_eq!(bank["total"], 300, "{order}");
        assert_eq!(bank["lost_updates"], 0, "{order}");
        assert_ledger_explains_total(&bank);
    }
}

const HOUSEHOLD: &[(&str, i64)] = &[("alice", 50), ("bob", 50)];

#[tokio::test]
async fn write_skew_takes_a_household_below_zero_unguarded_and_every_safe_mode_refuses_the_second_withdrawal(
) {
    for (mode, both_pass) in [
        ("unguarded", true),
        ("mutex", false),
        ("account-locks", false),
        ("optimistic", false),
        ("atomic", false),
    ] {
        let app = spawn_with(bank_config(
            mode,
            "rendezvous:2",
            HOUSEHOLD,
            &[&["alice", "bob"]],
        ))
        .await;

        let (first, second) = tokio::join!(
            withdraw_from(&app, "alice", 80),
            withdraw_from(&app, "bob", 80)
        );

        let mut statuses = [first.status(), second.status()];
        statuses.sort();
        let bank = bank_stats(&app).await;
        if both_pass {
            assert_eq!(statuses, [StatusCode::OK; 2], "{mode}");
            assert_eq!(bank["households_below_zero"], 1, "{mode}: {bank:#}");
            assert_eq!(bank["total"], -60, "{mode}");
        } else {
            assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{mode}");
            assert_eq!(bank["households_below_zero"], 0, "{mode}: {bank:#}");
            assert_eq!(bank["refused"], 1, "{mode}");
        }
        assert_eq!(bank["lost_updates"], 0, "{mode}: write skew erases nothing");
        assert_ledger_explains_total(&bank);
    }
}

#[tokio::test]
async fn a_row_by_row_read_inside_a_transfers_window_sees_the_total_off_by_the_amount_and_a_snapshot_does_not(
) {
    for (mode, read, total) in [("unguarded", "rows", 310), ("atomic", "snapshot", 300)] {
        let app = spawn_bank(mode, "rendezvous:2", THREE).await;

        // The read takes a, waits at the rendezvous with the transfer, takes b, waits alone (the
        // rendezvous times out), takes c: by then the transfer has written both sides.
        let (moved, read_all) = tokio::join!(transfer(&app, "a", "c", 10), app.get("/accounts"));

        assert_eq!(moved.status(), StatusCode::OK, "{mode}");
        let seen: Value = read_all.json().await.unwrap();
        assert_eq!(seen["read"], read, "{mode}");
        assert_eq!(seen["total"], total, "{mode}: {seen:#}");
        let bank = bank_stats(&app).await;
        assert_eq!(
            bank["total"], 300,
            "{mode}: no money was lost, only seen half-moved"
        );
        assert_eq!(bank["lost_updates"], 0, "{mode}");
    }
}

#[tokio::test]
async fn a_burst_of_unguarded_transfers_keeps_the_ledger_exact_whatever_it_loses() {
    let accounts: Vec<(String, i64)> = (0..4).map(|n| (n.to_string(), 1_000)).collect();
    let accounts: Vec<(&str, i64)> = accounts.iter().map(|(id, b)| (id.as_str(), *b)).collect();
    let app = spawn_bank("unguarded", "1ms", &accounts).await;

    let requests = (0..200).map(|i| {
        let (from, to) = (i % 4, (i * 7 + 1) % 4);
        let to = if to == from { (to + 1) % 4 } else { to };
        let app = &app;
        async move {
            transfer(app, &from.to_string(), &to.to_string(), 1 + i % 5)
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(requests).await;

    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_ledger_explains_total(&bank_stats(&app).await);
}

#[tokio::test]
async fn bad_bank_requests_get_a_problem_document_and_change_nothing() {
    let app = spawn_with(bank_config("unguarded", "none", THREE, &[])).await;
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        (
            "/transfers",
            r#"{"from": "a", "to": "zed", "amount": 1}"#,
            StatusCode::NOT_FOUND,
            "unknown-account",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "a", "amount": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": "a b", "to": "a", "amount": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": 1, "to": "a", "amount": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "b", "amount": 0}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "b", "amount": 9223372036854775808}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "b", "amount": 101}"#,
            StatusCode::CONFLICT,
            "insufficient-funds",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            r#"{"from": "a", "to": "b", "amount": 1, "memo": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/transfers",
            "[1]",
            StatusCode::BAD_REQUEST,
            "malformed-body",
        ),
        (
            "/accounts/zed/deposit",
            r#"{"amount": 1}"#,
            StatusCode::NOT_FOUND,
            "unknown-account",
        ),
        (
            "/accounts/a/deposit",
            r#"{"amount": 9223372036854775807}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "balance-overflow",
        ),
        (
            "/accounts/a/withdraw",
            r#"{"amount": -1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/bank/reset",
            r#"{"balances": {"zed": 1}}"#,
            StatusCode::NOT_FOUND,
            "unknown-account",
        ),
        (
            "/bank/reset",
            r#"{"balances": {"a": -1}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
        (
            "/bank/reset",
            r#"{"balances": [1]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
        ),
    ];
    let long_id = format!("/accounts/{}/deposit", "x".repeat(65));
    for (path, body, status, kind) in cases.iter().copied().chain([(
        long_id.as_str(),
        r#"{"amount": 1}"#,
        StatusCode::NOT_FOUND,
        "unknown-account",
    )]) {
        let response = app.post_raw(path, Some("application/json"), body).await;

        assert_eq!(response.status(), status, "{path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path} {body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("urn:racebank:problem:{kind}"),
            "{path} {body}: {problem:#}"
        );
    }
    assert_eq!(
        balances(&app).await,
        json!({"a": 100, "b": 100, "c": 100}),
        "nothing changed"
    );
    assert_eq!(bank_stats(&app).await["transfers"], 0);
}

#[tokio::test]
async fn a_server_without_a_bank_says_how_to_open_one() {
    let app = crate::helpers::spawn_app("unguarded", "none").await;

    let response = app.get("/accounts").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("--accounts"),
        "{problem:#}"
    );
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    assert!(
        stats.get("bank").is_none(),
        "no bank, no bank block: {stats:#}"
    );
}

#[tokio::test]
async fn a_bank_reset_with_balances_reopens_the_named_accounts_and_zeroes_the_rest() {
    let app = spawn_bank("unguarded", "none", THREE).await;
    transfer(&app, "a", "b", 10).await;

    let response = app
        .post_raw(
            "/bank/reset",
            Some("application/json"),
            r#"{"balances": {"a": 100}}"#,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let bank: Value = response.json().await.unwrap();
    assert_eq!(bank["total"], 100);
    assert_eq!(bank["transfers"], 0);
    assert_eq!(balances(&app).await, json!({"a": 100, "b": 0, "c": 0}));
}
