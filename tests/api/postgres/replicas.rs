//! Three replicas (three servers in this process, each with its own guard and pool) sharing one
//! account: where the in-process mutex stops working and the database's tools keep working.
//!
//! A rendezvous cannot cross processes, so the cross-replica races use a wide window instead:
//! `--work 300ms`, and one deposit sent to each replica at once. Each request reads within a few
//! milliseconds of being sent (loopback, an idle pool connection), so all three read before the
//! first can write unless one request is delayed by more than 300 ms: a margin of about a hundred.

use racebank::Stats;
use reqwest::StatusCode;

use super::{across, row_balance, spawn_replicas};
use crate::helpers::{assert_ledger_explains_balance, mixed_changes};

/// The window of the cross-replica races (see the module docs for the margin).
const WIDE: &str = "300ms";

/// One deposit of 5 to each of three replicas at once, into an empty account; the stats after.
async fn one_deposit_to_each_of_three_replicas(name: &str, mode: &str) -> Stats {
    let (account, replicas) = spawn_replicas(name, 3, mode, WIDE, 0).await;

    let statuses = across(&replicas, &[5, 5, 5]).await;

    assert_eq!(statuses, [StatusCode::OK; 3], "{mode}");
    let stats = replicas[2].stats().await;
    assert_eq!(stats.expected_balance, 15, "{mode}: {stats:?}");
    assert_ledger_explains_balance(&stats);
    assert_eq!(row_balance(account.as_str()).await, stats.balance, "{mode}");
    stats
}

#[tokio::test]
async fn postgres_unguarded_across_three_replicas_loses_two_of_three_deposits() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-unguarded", "unguarded").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.lost_net),
        (5, 2, 10)
    );
}

#[tokio::test]
async fn postgres_mutex_across_three_replicas_loses_two_of_three_deposits() {
    // Each replica's mutex admits its own request: three requests in the window at once.
    let stats = one_deposit_to_each_of_three_replicas("pg-3-mutex", "mutex").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.lost_net),
        (5, 2, 10)
    );
}

#[tokio::test]
async fn postgres_semaphore_across_three_replicas_loses_two_of_three_deposits() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-semaphore", "semaphore:2").await;
    assert_eq!((stats.balance, stats.lost_updates), (5, 2));
}

#[tokio::test]
async fn postgres_for_update_across_three_replicas_keeps_every_deposit() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-for-update", "for-update").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (15, 0, 0)
    );
}

#[tokio::test]
async fn postgres_advisory_across_three_replicas_keeps_every_deposit() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-advisory", "advisory").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (15, 0, 0)
    );
}

#[tokio::test]
async fn postgres_optimistic_across_three_replicas_redoes_two_then_one_and_keeps_every_deposit() {
    // All three read version 0; one writes, two redo; of those two, one writes and one redoes.
    let stats = one_deposit_to_each_of_three_replicas("pg-3-optimistic", "optimistic").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (15, 0, 3)
    );
}

#[tokio::test]
async fn postgres_repeatable_read_across_three_replicas_redoes_two_then_one_and_keeps_every_deposit(
) {
    let stats =
        one_deposit_to_each_of_three_replicas("pg-3-repeatable-read", "repeatable-read").await;
    assert_eq!(
        (stats.balance, stats.lost_updates, stats.retries),
        (15, 0, 3)
    );
}

#[tokio::test]
async fn postgres_serializable_across_three_replicas_keeps_every_deposit() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-serializable", "serializable").await;
    assert_eq!((stats.balance, stats.lost_updates), (15, 0));
    // Two redos at least (two of the three first attempts conflict with the one that commits);
    // SERIALIZABLE may refuse more than strictly needed, never fewer.
    assert!(stats.retries >= 3, "{stats:?}");
}

#[tokio::test]
async fn postgres_atomic_across_three_replicas_keeps_every_deposit() {
    let stats = one_deposit_to_each_of_three_replicas("pg-3-atomic", "atomic").await;
    assert_eq!((stats.balance, stats.lost_updates), (15, 0));
}

/// Many concurrent deposits and withdrawals over three replicas: every safe mode ends exactly at
/// the expected balance, pays out nothing it did not hold, and every replica reports the same
/// account-wide ledger.
async fn a_mixed_run_across_three_replicas(mode: &str) {
    let name = format!("pg-3-mixed-{mode}").replace(':', "-");
    let (account, replicas) = spawn_replicas(&name, 3, mode, "0ms..2ms", 200).await;
    let changes = mixed_changes(60);

    let statuses = across(&replicas, &changes).await;

    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64;
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count() as u64;
    assert_eq!(ok + refused, 60, "{mode}: {statuses:?}");
    let stats = replicas[0].stats().await;
    for replica in &replicas[1..] {
        assert_eq!(
            replica.stats().await,
            stats,
            "{mode}: every replica, the same ledger"
        );
    }
    assert_eq!(stats.deposit_count + stats.withdrawal_count, ok, "{mode}");
    assert_eq!(stats.refused_count, refused, "{mode}");
    assert_eq!(stats.lost_updates, 0, "{mode}: {stats:?}");
    assert_eq!(i128::from(stats.balance), stats.expected_balance, "{mode}");
    assert!(!stats.overdraft, "{mode}");
    assert_ledger_explains_balance(&stats);
    assert_eq!(row_balance(account.as_str()).await, stats.balance, "{mode}");
}

#[tokio::test]
async fn postgres_for_update_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("for-update").await;
}

#[tokio::test]
async fn postgres_advisory_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("advisory").await;
}

#[tokio::test]
async fn postgres_optimistic_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("optimistic").await;
}

#[tokio::test]
async fn postgres_repeatable_read_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("repeatable-read").await;
}

#[tokio::test]
async fn postgres_serializable_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("serializable").await;
}

#[tokio::test]
async fn postgres_atomic_across_three_replicas_ends_at_the_expected_balance() {
    a_mixed_run_across_three_replicas("atomic").await;
}

#[tokio::test]
async fn postgres_unguarded_across_three_replicas_loses_updates_and_the_ledger_still_explains_them()
{
    // 60 deposits, 4 connections per replica, 20 ms in the window: twelve requests are in the
    // window at any moment, so losses are certain; the assertion needs only one.
    let (account, replicas) =
        spawn_replicas("pg-3-unguarded-many", 3, "unguarded", "20ms", 0).await;

    across(&replicas, &[7; 60]).await;

    let stats = replicas[1].stats().await;
    assert_eq!(replicas[2].stats().await, stats);
    assert_eq!(stats.expected_balance, 420);
    assert!(stats.lost_updates > 0, "{stats:?}");
    assert_ledger_explains_balance(&stats);
    assert_eq!(row_balance(account.as_str()).await, stats.balance);
}

#[tokio::test]
async fn a_reset_on_one_replica_resets_the_account_for_every_replica() {
    let (_, replicas) = spawn_replicas("pg-3-reset", 3, "atomic", "none", 0).await;
    across(&replicas, &[5, 5, 5, -1000]).await;

    let reset = replicas[1].reset(42).await;

    let stats = replicas[2].stats().await;
    assert_eq!(stats, reset);
    assert_eq!((stats.balance, stats.initial_balance), (42, 42));
    assert_eq!(
        (
            stats.deposit_count,
            stats.withdrawal_count,
            stats.refused_count
        ),
        (0, 0, 0)
    );
    assert_eq!(replicas[0].balance().await, 42);
}
