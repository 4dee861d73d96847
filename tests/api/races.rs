//! The race itself, made exact with `rendezvous`, and the mutex that prevents it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_ledger_explains_balance, spawn_app};

#[tokio::test]
async fn unguarded_two_parallel_deposits_at_a_rendezvous_lose_exactly_one() {
    let app = spawn_app("unguarded", "rendezvous:2").await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["balance"], 5, "both deposits read 0 and wrote 5");
    assert_eq!(second["balance"], 5, "both deposits read 0 and wrote 5");
    let stats = app.stats().await;
    assert_eq!(stats.balance, 5);
    assert_eq!(stats.expected_balance, 10);
    assert_eq!(stats.lost_updates, 1);
    assert_eq!(stats.lost_net, 5);
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn unguarded_two_parallel_withdrawals_both_pass_the_funds_check_and_overdraw() {
    let app = spawn_app("unguarded", "rendezvous:2").await;
    app.reset(100).await;

    let (first, second) = tokio::join!(app.withdraw(100), app.withdraw(100));

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let stats = app.stats().await;
    assert_eq!(stats.balance, 0);
    assert_eq!(
        stats.withdrawal_sum, 200,
        "200 paid out of an account that held 100"
    );
    assert_eq!(stats.expected_balance, -100);
    assert!(stats.overdraft);
    assert_eq!(stats.lost_updates, 1);
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn mutex_keeps_the_second_deposit_out_of_the_window_so_nothing_is_lost() {
    // The first request waits alone at the rendezvous (about a second) while holding the lock.
    let app = spawn_app("mutex", "rendezvous:2").await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let stats = app.stats().await;
    assert_eq!(stats.balance, 10);
    assert_eq!(stats.lost_updates, 0);
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn mutex_refuses_the_second_withdrawal_with_the_balance_it_saw() {
    let app = spawn_app("mutex", "1ms").await;
    app.reset(100).await;

    let (first, second) = tokio::join!(app.withdraw(100), app.withdraw(100));

    let mut statuses = [first.status(), second.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let refused = if first.status() == StatusCode::CONFLICT {
        first
    } else {
        second
    };
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        problem["balance"], 0,
        "the refused withdrawal saw the balance after the first"
    );
    assert_eq!(problem["amount"], 100);
    let stats = app.stats().await;
    assert_eq!(
        (stats.balance, stats.refused_count, stats.overdraft),
        (0, 1, false)
    );
}

#[tokio::test]
async fn mutex_ends_exactly_at_the_expected_balance_after_concurrent_deposits() {
    let app = spawn_app("mutex", "1ms").await;
    let deposits = vec![7; 200];

    let statuses = app.concurrently(&deposits).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let stats = app.stats().await;
    assert_eq!(stats.balance, 1400);
    assert_eq!(stats.expected_balance, 1400);
    assert_eq!((stats.deposit_count, stats.lost_updates), (200, 0));
}

#[tokio::test]
async fn unguarded_loses_deposits_under_concurrency_and_says_how_many() {
    // 200 deposits at once with 1 ms between read and write: statistically certain to overlap
    // (each request's window is at least 1 ms; all are sent together). The assertion only needs one.
    let app = spawn_app("unguarded", "1ms").await;

    app.concurrently(&vec![7; 200]).await;

    let stats = app.stats().await;
    assert_eq!(stats.expected_balance, 1400);
    assert!(stats.balance < 1400, "{stats:?}");
    assert!(stats.lost_updates > 0);
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn a_reset_waits_for_the_guarded_deposit_in_its_window() {
    // The deposit has two seconds of work and the reset comes half a second in: wide margins, so
    // that a slow machine still has the deposit inside its window when the reset arrives.
    for mode in ["mutex", "semaphore:2"] {
        let app = spawn_app(mode, "2s").await;
        let deposit = {
            let request = app
                .client
                .post(format!("{}/deposit", app.address))
                .header("content-type", "application/json")
                .body(crate::helpers::amount_body(5));
            tokio::spawn(request.send())
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;

        let after_reset = app.reset(1000).await;

        let deposit = deposit.await.unwrap().expect("the deposit is answered");
        assert_eq!(deposit.status(), StatusCode::OK, "{mode}");
        let deposit: Value = deposit.json().await.unwrap();
        assert_eq!(deposit["balance"], 5, "{mode}: the deposit finished first");
        assert_eq!(after_reset.balance, 1000, "{mode}");
        let stats = app.stats().await;
        assert_eq!(stats.balance, 1000, "{mode}: the reset was not erased");
        assert_eq!((stats.deposit_count, stats.lost_updates), (0, 0), "{mode}");
        assert_ledger_explains_balance(&stats);
    }
}
