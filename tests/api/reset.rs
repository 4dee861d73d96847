//! `/reset` against a write in flight, in every mode of every store: the reset waits for the write,
//! or the write does not land over the reset. Either way the final balance and `/stats` agree.
//!
//! Each case sends one deposit of 5 with a second of work, and a reset to 1000 a third of a second
//! into that work: wide margins, so that a slow machine still has the deposit in its window.

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_ledger_explains_balance, spawn_app, spawn_with, TestApp};
use crate::postgres::{replica_config, unique_account};
use crate::redis::TestAccount;

/// The deposit's work: the window the reset arrives in.
const WORK: &str = "1s";

/// What a mode does with a reset inside a deposit's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The reset waits for the deposit: the deposit answers 5, the account ends at 1000 with no
    /// deposit counted.
    ResetWaits,
    /// The deposit sees the reset (its check fails, or it works before a one-step write) and applies
    /// on top of it: it answers 1005, and the account ends there with one deposit counted.
    DepositAppliesAfter,
}

/// Runs the case on `app` and checks the exact outcome.
async fn a_reset_inside_the_window(app: &TestApp, case: &str, outcome: Outcome) {
    let deposit = {
        let request = app
            .client
            .post(format!("{}/deposit", app.address))
            .header("content-type", "application/json")
            .body(crate::helpers::amount_body(5));
        tokio::spawn(request.send())
    };
    tokio::time::sleep(Duration::from_millis(330)).await;

    let after_reset = app.reset(1000).await;

    let deposit = deposit.await.unwrap().expect("the deposit is answered");
    assert_eq!(deposit.status(), StatusCode::OK, "{case}");
    let deposit: Value = deposit.json().await.unwrap();
    let stats = app.stats().await;
    match outcome {
        Outcome::ResetWaits => {
            assert_eq!(deposit["balance"], 5, "{case}: the deposit finished first");
            assert_eq!(after_reset.balance, 1000, "{case}");
            assert_eq!(stats.balance, 1000, "{case}: the reset was not erased");
            assert_eq!((stats.deposit_count, stats.lost_updates), (0, 0), "{case}");
        }
        Outcome::DepositAppliesAfter => {
            assert_eq!(
                deposit["balance"], 1005,
                "{case}: the deposit saw the reset"
            );
            assert_eq!(stats.balance, 1005, "{case}: the reset was not erased");
            assert_eq!((stats.deposit_count, stats.lost_updates), (1, 0), "{case}");
        }
    }
    assert_eq!(
        stats.expected_balance,
        i128::from(stats.balance),
        "{case}: {stats:?}"
    );
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn a_reset_never_lands_inside_a_write_in_any_memory_mode() {
    let cases = [
        ("mutex", Outcome::ResetWaits),
        ("semaphore:2", Outcome::ResetWaits),
        ("optimistic", Outcome::DepositAppliesAfter),
        ("atomic", Outcome::DepositAppliesAfter),
    ];
    join_all(cases.iter().map(|&(mode, outcome)| async move {
        let app = spawn_app(mode, WORK).await;
        a_reset_inside_the_window(&app, &format!("memory {mode}"), outcome).await;
    }))
    .await;
}

#[tokio::test]
async fn a_reset_never_lands_inside_a_write_in_any_postgres_mode() {
    let cases = [
        ("mutex", Outcome::ResetWaits),
        ("semaphore:2", Outcome::ResetWaits),
        ("for-update", Outcome::ResetWaits),
        ("advisory", Outcome::ResetWaits),
        ("optimistic", Outcome::DepositAppliesAfter),
        ("atomic", Outcome::DepositAppliesAfter),
        ("repeatable-read", Outcome::DepositAppliesAfter),
        ("serializable", Outcome::DepositAppliesAfter),
    ];
    join_all(cases.iter().map(|&(mode, outcome)| async move {
        let account = unique_account(&format!("reset-window-{mode}").replace(':', "-"));
        let app = spawn_with(replica_config(&account, mode, WORK)).await;
        app.reset(0).await;
        a_reset_inside_the_window(&app, &format!("postgres {mode}"), outcome).await;
    }))
    .await;
}

#[tokio::test]
async fn a_reset_never_lands_inside_a_write_in_any_redis_mode() {
    // The lease (5 s) outlasts the work: inside it, `lease` is documented as safe.
    let cases = [
        ("mutex", Outcome::ResetWaits),
        ("semaphore:2", Outcome::ResetWaits),
        ("lease", Outcome::ResetWaits),
        ("fenced", Outcome::ResetWaits),
        ("fenced-write-only", Outcome::ResetWaits),
        ("optimistic", Outcome::DepositAppliesAfter),
        ("atomic", Outcome::DepositAppliesAfter),
    ];
    join_all(cases.iter().map(|&(mode, outcome)| async move {
        let account = TestAccount::new(&format!("reset-window-{mode}").replace(':', "-")).await;
        let app = spawn_with(account.config(mode, WORK, 5000)).await;
        app.reset(0).await;
        a_reset_inside_the_window(&app, &format!("redis {mode}"), outcome).await;
        account.delete().await;
    }))
    .await;
}
