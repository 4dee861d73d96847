//! Semaphore, optimistic and atomic: correct where they should be, and exactly how not where not.

use reqwest::StatusCode;

use crate::helpers::{assert_ledger_explains_balance, mixed_changes, spawn_app};

#[tokio::test]
async fn the_safe_strategies_end_exactly_at_the_expected_balance_and_never_overdraw() {
    for mode in ["semaphore:1", "optimistic", "atomic", "mutex"] {
        let app = spawn_app(mode, "0ms..1ms").await;
        app.reset(200).await;
        let changes = mixed_changes(400);

        let statuses = app.concurrently(&changes).await;

        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{mode}: {statuses:?}"
        );
        let stats = app.stats().await;
        assert_eq!(stats.lost_updates, 0, "{mode}: {stats:?}");
        assert_eq!(i128::from(stats.balance), stats.expected_balance, "{mode}");
        assert!(stats.balance >= 0 && !stats.overdraft, "{mode}: {stats:?}");
        assert_ledger_explains_balance(&stats);
    }
}

#[tokio::test]
async fn withdrawals_racing_for_one_balance_pay_out_once_in_the_safe_strategies() {
    for mode in ["semaphore:1", "optimistic", "atomic"] {
        let app = spawn_app(mode, "rendezvous:2").await;
        app.reset(100).await;

        let (first, second) = tokio::join!(app.withdraw(100), app.withdraw(100));

        let mut statuses = [first.status(), second.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{mode}");
        let stats = app.stats().await;
        assert_eq!((stats.balance, stats.withdrawal_sum), (0, 100), "{mode}");
        assert!(!stats.overdraft, "{mode}");
    }
}

#[tokio::test]
async fn a_semaphore_with_two_permits_lets_two_deposits_collide() {
    let app = spawn_app("semaphore:2", "rendezvous:2").await;

    tokio::join!(app.deposit(5), app.deposit(5));

    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.expected_balance), (5, 10));
    assert_eq!((stats.lost_updates, stats.lost_net), (1, 5));
}

#[tokio::test]
async fn a_semaphore_loses_fewer_updates_as_its_permits_shrink() {
    // Eight deposits meet four at a time; each group of four reads one balance, so three of its
    // four writes are lost. With two permits, pairs meet; with one, nobody meets anybody.
    let cases = [
        ("semaphore:4", "rendezvous:4", 6),
        ("semaphore:2", "rendezvous:2", 4),
    ];
    for (mode, work, lost) in cases {
        let app = spawn_app(mode, work).await;

        app.concurrently(&[1; 8]).await;

        let stats = app.stats().await;
        assert_eq!(stats.lost_updates, lost, "{mode}: {stats:?}");
        let lost = i64::try_from(lost).expect("a small count");
        assert_eq!(stats.balance, 8 - lost, "{mode}");
        assert_ledger_explains_balance(&stats);
    }
}

#[tokio::test]
async fn optimistic_redoes_the_loser_of_a_conflict_exactly_once() {
    // Both read 0 and meet; one swap wins, the other sees 5, redoes its work and writes 10.
    let app = spawn_app("optimistic", "rendezvous:2").await;

    tokio::join!(app.deposit(5), app.deposit(5));

    let stats = app.stats().await;
    assert_eq!(stats.balance, 10);
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.lost_updates, 0);
}

#[tokio::test]
async fn optimistic_gives_up_with_a_503_when_retries_run_out() {
    let app = crate::helpers::spawn_with(racebank::Config {
        account: racebank::AccountConfig {
            mode: racebank::Mode::Optimistic,
            work: "rendezvous:2".parse().unwrap(),
            max_retries: 0,
            ..racebank::AccountConfig::default()
        },
        ..racebank::Config::default()
    })
    .await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    let mut statuses = [first.status(), second.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE]);
    let stats = app.stats().await;
    assert_eq!((stats.balance, stats.deposit_count), (5, 1));
    assert_eq!(stats.retries_exhausted, 1);
    assert_ledger_explains_balance(&stats);
}
