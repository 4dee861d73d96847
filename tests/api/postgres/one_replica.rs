//! One replica, every PostgreSQL mode: the race made exact with `rendezvous:2`.
//!
//! Two requests meet in the window (both have read before either writes) whenever the mode lets
//! them in together; a mode that keeps the second out makes the first wait its full second at the
//! rendezvous alone. So each outcome below is exact, not likely.

use racebank::Stats;
use reqwest::StatusCode;
use serde_json::Value;

use super::{row_balance, spawn_one};
use crate::helpers::assert_ledger_explains_balance;

/// Two deposits of 5 into an empty account at a rendezvous of two; returns the stats after.
async fn two_deposits_at_a_rendezvous(name: &str, mode: &str) -> Stats {
    let (account, app) = spawn_one(name, mode, "rendezvous:2", 0).await;

    let (first, second) = tokio::join!(app.deposit(5), app.deposit(5));

    assert_eq!(first.status(), StatusCode::OK, "{mode}");
    assert_eq!(second.status(), StatusCode::OK, "{mode}");
    let stats = app.stats().await;
    assert_eq!(stats.store, "postgres");
    assert_eq!(stats.expected_balance, 10, "{mode}: {stats:?}");
    assert_ledger_explains_balance(&stats);
    assert_eq!(
        row_balance(account.as_str()).await,
        stats.balance,
        "{mode}: the row holds the balance /stats reports"
    );
    stats
}

/// Two withdrawals of 100 from 100 at a rendezvous of two; returns the statuses, the refusal's
/// problem document if there was one, and the stats after.
async fn two_withdrawals_at_a_rendezvous(
    name: &str,
    mode: &str,
) -> ([StatusCode; 2], Option<Value>, Stats) {
    let (_, app) = spawn_one(name, mode, "rendezvous:2", 100).await;

    let (first, second) = tokio::join!(app.withdraw(100), app.withdraw(100));

    let statuses = [first.status(), second.status()];
    let refused = [first, second]
        .into_iter()
        .find(|response| response.status() == StatusCode::CONFLICT);
    let problem = match refused {
        Some(response) => Some(response.json::<Value>().await.unwrap()),
        None => None,
    };
    let stats = app.stats().await;
    assert_ledger_explains_balance(&stats);
    (statuses, problem, stats)
}

/// The guarded outcome of two withdrawals: one paid, one refused with the balance after the first.
async fn assert_one_withdrawal_paid_and_one_refused(name: &str, mode: &str) -> Stats {
    let (mut statuses, problem, stats) = two_withdrawals_at_a_rendezvous(name, mode).await;
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{mode}");
    let problem = problem.expect("a refusal");
    assert_eq!(
        problem["balance"], 0,
        "{mode}: the refusal saw the first's write"
    );
    assert_eq!(problem["amount"], 100, "{mode}");
    assert_eq!(
        (stats.balance, stats.withdrawal_sum, stats.refused_count),
        (0, 100, 1),
        "{mode}: {stats:?}"
    );
    assert!(!stats.overdraft, "{mode}");
    assert_eq!(stats.lost_updates, 0, "{mode}");
    stats
}

#[tokio::test]
async fn postgres_unguarded_loses_exactly_one_of_two_deposits_at_a_rendezvous() {
    let stats = two_deposits_at_a_rendezvous("pg-unguarded-deposits", "unguarded").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.lost_net),
        (5, 1, 5)
    );
    assert_eq!((stats.lost_removed, stats.lost_added), (5, 0));
}

#[tokio::test]
async fn postgres_unguarded_pays_two_withdrawals_from_a_balance_that_covers_one() {
    let (statuses, _, stats) =
        two_withdrawals_at_a_rendezvous("pg-unguarded-withdrawals", "unguarded").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    assert_eq!((stats.balance, stats.withdrawal_sum), (0, 200));
    assert!(stats.overdraft);
    assert_eq!(stats.lost_updates, 1);
    // The second write put back the 100 the first had withdrawn.
    assert_eq!((stats.lost_removed, stats.lost_added), (0, 100));
}

#[tokio::test]
async fn postgres_mutex_in_one_replica_loses_nothing() {
    let stats = two_deposits_at_a_rendezvous("pg-mutex-deposits", "mutex").await;
    assert_eq!((stats.balance, stats.lost_updates), (10, 0));
}

#[tokio::test]
async fn postgres_mutex_in_one_replica_refuses_the_second_withdrawal() {
    assert_one_withdrawal_paid_and_one_refused("pg-mutex-withdrawals", "mutex").await;
}

#[tokio::test]
async fn postgres_semaphore_of_two_lets_both_deposits_in_and_loses_one() {
    let stats = two_deposits_at_a_rendezvous("pg-semaphore-deposits", "semaphore:2").await;
    assert_eq!((stats.balance, stats.lost_updates), (5, 1));
}

#[tokio::test]
async fn postgres_for_update_makes_the_second_deposit_wait_for_the_row() {
    let stats = two_deposits_at_a_rendezvous("pg-for-update-deposits", "for-update").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (10, 0, 0)
    );
}

#[tokio::test]
async fn postgres_for_update_refuses_the_second_withdrawal() {
    assert_one_withdrawal_paid_and_one_refused("pg-for-update-withdrawals", "for-update").await;
}

#[tokio::test]
async fn postgres_advisory_makes_the_second_deposit_wait_for_the_lock() {
    let stats = two_deposits_at_a_rendezvous("pg-advisory-deposits", "advisory").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (10, 0, 0)
    );
}

#[tokio::test]
async fn postgres_advisory_refuses_the_second_withdrawal() {
    assert_one_withdrawal_paid_and_one_refused("pg-advisory-withdrawals", "advisory").await;
}

#[tokio::test]
async fn postgres_optimistic_redoes_the_deposit_whose_version_moved_exactly_once() {
    let stats = two_deposits_at_a_rendezvous("pg-optimistic-deposits", "optimistic").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (10, 0, 1)
    );
}

#[tokio::test]
async fn postgres_optimistic_redoes_the_second_withdrawal_and_then_refuses_it() {
    let stats =
        assert_one_withdrawal_paid_and_one_refused("pg-optimistic-withdrawals", "optimistic").await;
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn postgres_repeatable_read_refuses_the_second_write_with_40001_and_redoes_it_once() {
    let stats =
        two_deposits_at_a_rendezvous("pg-repeatable-read-deposits", "repeatable-read").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (10, 0, 1)
    );
}

#[tokio::test]
async fn postgres_repeatable_read_refuses_the_second_withdrawal() {
    let stats = assert_one_withdrawal_paid_and_one_refused(
        "pg-repeatable-read-withdrawals",
        "repeatable-read",
    )
    .await;
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn postgres_serializable_refuses_the_second_write_with_40001_and_redoes_it_once() {
    let stats = two_deposits_at_a_rendezvous("pg-serializable-deposits", "serializable").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (10, 0, 1)
    );
}

#[tokio::test]
async fn postgres_serializable_refuses_the_second_withdrawal() {
    let stats =
        assert_one_withdrawal_paid_and_one_refused("pg-serializable-withdrawals", "serializable")
            .await;
    assert_eq!(stats.retries, 1);
}

#[tokio::test]
async fn postgres_atomic_applies_both_deposits_in_place() {
    let stats = two_deposits_at_a_rendezvous("pg-atomic-deposits", "atomic").await;
    assert_eq!((stats.balance, stats.lost_updates), (10, 0));
}

#[tokio::test]
async fn postgres_atomic_refuses_the_second_withdrawal_in_the_update_itself() {
    assert_one_withdrawal_paid_and_one_refused("pg-atomic-withdrawals", "atomic").await;
}
