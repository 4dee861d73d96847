//! `/stats`, `/reset`, `/balance`, `/healthz`: the ledger explains the balance in every mode.

use std::time::Duration;

use racebank::{AccountConfig, Config, StoreKind};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_ledger_explains_balance, mixed_changes, spawn_app, spawn_with};

#[tokio::test]
async fn after_a_concurrent_mixed_run_the_ledger_explains_the_balance_in_every_mode() {
    for mode in StoreKind::Memory.showcase() {
        let app = spawn_app(&mode.to_string(), "0ms..2ms").await;
        app.reset(500).await;
        let changes = mixed_changes(300);

        let statuses = app.concurrently(&changes).await;

        let stats = app.stats().await;
        let acknowledged = statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64;
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count() as u64;
        assert_eq!(acknowledged + refused, 300, "{mode}: {statuses:?}");
        assert_eq!(
            stats.deposit_count + stats.withdrawal_count,
            acknowledged,
            "{mode}"
        );
        assert_eq!(stats.refused_count, refused, "{mode}");
        assert_eq!(stats.mode, mode.to_string());
        assert_ledger_explains_balance(&stats);
        if mode.is_safe(1, "0ms..2ms".parse().unwrap(), Duration::from_millis(100)) {
            assert_eq!(stats.lost_updates, 0, "{mode}: {stats:?}");
            assert_eq!(i128::from(stats.balance), stats.expected_balance, "{mode}");
            assert!(!stats.overdraft, "{mode}");
        }
    }
}

#[tokio::test]
async fn stats_report_the_mode_the_work_and_every_counter() {
    let app = spawn_app("mutex", "none").await;
    app.deposit(30).await;
    app.withdraw(10).await;
    app.withdraw(1000).await;

    let stats: Value = app.get("/stats").await.json().await.unwrap();

    for (field, value) in [
        ("mode", Value::from("mutex")),
        ("work", Value::from("none")),
        ("balance", 20.into()),
        ("initial_balance", 0.into()),
        ("deposit_count", 1.into()),
        ("deposit_sum", 30.into()),
        ("withdrawal_count", 1.into()),
        ("withdrawal_sum", 10.into()),
        ("refused_count", 1.into()),
        ("expected_balance", 20.into()),
        ("lost_updates", 0.into()),
        ("lost_net", 0.into()),
        ("drift", 0.into()),
        ("overdraft", false.into()),
        ("retries", 0.into()),
    ] {
        assert_eq!(stats[field], value, "{field}");
    }
}

#[tokio::test]
async fn reset_sets_the_balance_and_zeroes_every_counter() {
    let app = spawn_app("unguarded", "rendezvous:2").await;
    tokio::join!(app.deposit(5), app.deposit(5));

    let stats = app.reset(250).await;

    assert_eq!((stats.balance, stats.initial_balance), (250, 250));
    assert_eq!(
        (stats.deposit_count, stats.lost_updates, stats.lost_net),
        (0, 0, 0)
    );
    assert_eq!(stats.expected_balance, 250);
    assert_eq!(app.balance().await, 250);
}

#[tokio::test]
async fn reset_without_a_body_returns_to_the_opening_balance() {
    let app = spawn_with(Config {
        account: AccountConfig {
            initial_balance: 1000,
            work: "none".parse().unwrap(),
            ..AccountConfig::default()
        },
        ..Config::default()
    })
    .await;
    app.deposit(5).await;

    let response = app.post_raw("/reset", Some("application/json"), "").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.balance().await, 1000);
    assert_eq!(app.stats().await.deposit_count, 0);
}

#[tokio::test]
async fn healthz_and_balance_answer_json() {
    let app = spawn_app("unguarded", "none").await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let deposit: Value = app.deposit(42).await.json().await.unwrap();
    assert_eq!(deposit, serde_json::json!({ "balance": 42 }));
    assert_eq!(app.balance().await, 42);
}
