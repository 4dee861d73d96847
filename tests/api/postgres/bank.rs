//! The bank on PostgreSQL, over HTTP: the anomalies only two accounts can show, made exact with
//! `--work rendezvous:2` (both moves read before either writes), and every mode across three
//! replicas.
//!
//! Each test's bank is keyed by its own account id (`unique_account`), so its rows are its own.

use futures::future::join_all;
use racebank::wire::bank::{AccountsBody, BankStats};
use racebank::{AccountId, BankSpec, Config, LockOrder};
use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::{replica_config, require_postgres, sql, unique_account};
use crate::bank::{bank_spec as spec, transfer, withdraw_from as withdraw};
use crate::helpers::{spawn_with, TestApp};

/// The config of one replica of `account`'s bank.
fn bank_config(
    account: &AccountId,
    mode: &str,
    work: &str,
    bank: &BankSpec,
    order: LockOrder,
) -> Config {
    let mut config = replica_config(account, mode, work);
    config.account.bank = Some(bank.clone());
    config.account.lock_order = order;
    config
}

/// `count` servers sharing one new bank, run in `mode` with `work`, locking in `order`.
async fn spawn_bank(
    name: &str,
    count: usize,
    (mode, work, order): (&str, &str, LockOrder),
    bank: &BankSpec,
) -> (AccountId, Vec<TestApp>) {
    require_postgres().await;
    let account = unique_account(name);
    let mut replicas = Vec::with_capacity(count);
    for n in 0..count {
        let replica = spawn_with(bank_config(&account, mode, work, bank, order)).await;
        assert_eq!(
            replica.get("/healthz").await.status(),
            StatusCode::OK,
            "replica {n} of {name} did not start"
        );
        warm_up(&replica).await;
        replicas.push(replica);
    }
    (account, replicas)
}

/// Opens the replica's pool connections before a race: a request that has to connect first
/// could reach the rendezvous after its partner gave up waiting. (`/stats` reads the bank's
/// ledger in one statement, without the work.)
async fn warm_up(replica: &TestApp) {
    let reads = join_all((0..4).map(|_| replica.get("/stats"))).await;
    let statuses: Vec<StatusCode> = reads.iter().map(Response::status).collect();
    assert!(
        statuses.iter().all(|status| *status == StatusCode::OK),
        "the replica's first reads of the bank: {statuses:?}"
    );
}

/// One server of a new bank.
async fn spawn_one_bank(name: &str, mode: &str, order: LockOrder, bank: &BankSpec) -> TestApp {
    let (_, mut replicas) = spawn_bank(name, 1, (mode, "rendezvous:2", order), bank).await;
    replicas.pop().expect("one replica")
}

/// One `atomic` server of a new bank, without work (no rendezvous: requests may go one at a time).
async fn spawn_atomic_without_work(name: &str, bank: &BankSpec) -> (AccountId, TestApp) {
    let (account, mut replicas) =
        spawn_bank(name, 1, ("atomic", "none", LockOrder::Id), bank).await;
    (account, replicas.pop().expect("one replica"))
}

/// `GET /accounts`.
async fn accounts(app: &TestApp) -> AccountsBody {
    let response = app.get("/accounts").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("an accounts body")
}

/// The bank's part of `/stats`, checked against the identity every quiet bank keeps.
async fn bank_stats(app: &TestApp) -> BankStats {
    let stats: Value = app.get("/stats").await.json().await.expect("stats");
    let bank: BankStats = serde_json::from_value(stats["bank"].clone()).expect("a bank in /stats");
    assert_eq!(
        bank.total,
        bank.expected_total + bank.money_created - bank.money_destroyed,
        "the ledger explains the total: {bank:?}"
    );
    for account in &bank.accounts {
        assert_eq!(
            account.drift,
            account.money_created - account.money_destroyed,
            "{bank:?}"
        );
    }
    bank
}

/// The balance of `id` in `stats`.
fn balance(stats: &BankStats, id: &str) -> i64 {
    stats
        .accounts
        .iter()
        .find(|a| a.id == id)
        .expect("the account is in /stats")
        .balance
}

/// The `type` of a problem answer.
async fn problem_type(response: Response) -> String {
    let body: Value = response.json().await.expect("a problem document");
    body["type"].as_str().unwrap_or_default().to_string()
}

fn abc() -> BankSpec {
    spec(&[("a", 100), ("b", 100), ("c", 100)], &[])
}

#[tokio::test]
async fn unguarded_transfers_a_to_b_and_b_to_c_erase_one_write_to_b_and_the_total_is_off_by_it() {
    let app = spawn_one_bank("pg-bank-chain", "unguarded", LockOrder::Id, &abc()).await;

    let (ab, bc) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "c", 10));

    assert_eq!((ab.status(), bc.status()), (StatusCode::OK, StatusCode::OK));
    let stats = bank_stats(&app).await;
    assert_eq!(stats.expected_total, 300);
    assert_eq!(stats.lost_updates, 1, "{stats:?}");
    let b = &stats.accounts[1];
    assert_eq!((b.id.as_str(), b.lost_updates), ("b", 1), "{stats:?}");
    assert_eq!(stats.money_created + stats.money_destroyed, 10, "{stats:?}");
    assert_eq!(
        stats.total,
        300 + stats.money_created - stats.money_destroyed,
        "{stats:?}"
    );
    assert_eq!((balance(&stats, "a"), balance(&stats, "c")), (90, 110));
}

#[tokio::test]
async fn unguarded_transfers_a_to_b_twice_keep_the_total_but_leave_both_accounts_wrong_by_one() {
    let bank = spec(&[("a", 100), ("b", 100)], &[]);
    let app = spawn_one_bank("pg-bank-twice", "unguarded", LockOrder::Id, &bank).await;

    let (first, second) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "a", "b", 10));

    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let stats = bank_stats(&app).await;
    assert_eq!((stats.total, stats.expected_total), (200, 200));
    let (a, b) = (&stats.accounts[0], &stats.accounts[1]);
    assert_eq!(
        (a.balance, a.expected_balance, a.money_created),
        (90, 80, 10)
    );
    assert_eq!(
        (b.balance, b.expected_balance, b.money_destroyed),
        (110, 120, 10)
    );
    assert_eq!(stats.lost_updates, 2);
}

/// A->B 10 and B->A 3 at once in for-update, locking in `order`; the stats after.
async fn opposite_transfers_in_for_update(name: &str, order: LockOrder) -> BankStats {
    let bank = spec(&[("a", 100), ("b", 100)], &[]);
    let app = spawn_one_bank(name, "for-update", order, &bank).await;

    let (ab, ba) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "a", 3));

    assert_eq!((ab.status(), ba.status()), (StatusCode::OK, StatusCode::OK));
    let stats = bank_stats(&app).await;
    assert_eq!((balance(&stats, "a"), balance(&stats, "b")), (93, 107));
    assert_eq!((stats.lost_updates, stats.transfers), (0, 2));
    stats
}

#[tokio::test]
async fn for_update_in_request_order_deadlocks_once_and_redoes_it_so_both_transfers_apply() {
    let stats = opposite_transfers_in_for_update("pg-bank-deadlock", LockOrder::Request).await;
    assert_eq!((stats.deadlocks, stats.retries), (1, 1), "{stats:?}");
}

#[tokio::test]
async fn for_update_in_id_order_never_deadlocks() {
    let stats = opposite_transfers_in_for_update("pg-bank-no-deadlock", LockOrder::Id).await;
    assert_eq!((stats.deadlocks, stats.retries), (0, 0), "{stats:?}");
}

/// Withdrawals of 80 from alice and from bob at once, a household holding 50 and 50; the
/// statuses (alice's, bob's) and the stats after.
async fn household_withdrawals(name: &str, mode: &str) -> (Vec<StatusCode>, BankStats) {
    let bank = spec(&[("alice", 50), ("bob", 50)], &[&["alice", "bob"]]);
    let app = spawn_one_bank(name, mode, LockOrder::Id, &bank).await;

    let (alice, bob) = tokio::join!(withdraw(&app, "alice", 80), withdraw(&app, "bob", 80));

    let statuses = sorted_statuses([alice, bob], "household-limit").await;
    (statuses, bank_stats(&app).await)
}

/// The statuses of `responses`, sorted, every 409 among them checked to be a `problem`.
async fn sorted_statuses(responses: [Response; 2], problem: &str) -> Vec<StatusCode> {
    let mut statuses: Vec<StatusCode> = responses.iter().map(Response::status).collect();
    for response in responses {
        if response.status() == StatusCode::CONFLICT {
            assert_eq!(
                problem_type(response).await,
                format!("urn:racebank:problem:{problem}")
            );
        }
    }
    statuses.sort();
    statuses
}

#[tokio::test]
async fn repeatable_read_lets_write_skew_through_and_the_household_ends_below_zero() {
    let (statuses, stats) = household_withdrawals("pg-bank-skew-rr", "repeatable-read").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK]);
    assert_eq!(stats.households_below_zero, 1, "{stats:?}");
    assert_eq!((stats.total, stats.lost_updates), (-60, 0));
}

#[tokio::test]
async fn serializable_stops_write_skew_one_withdrawal_passes_and_one_meets_the_household_limit() {
    let (statuses, stats) = household_withdrawals("pg-bank-skew-ser", "serializable").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!(stats.households_below_zero, 0, "{stats:?}");
    assert_eq!((stats.total, stats.refused, stats.withdrawals), (20, 1, 1));
    assert!(stats.retries >= 1, "{stats:?}");
}

#[tokio::test]
async fn for_update_stops_write_skew_by_locking_the_whole_household() {
    let (statuses, stats) = household_withdrawals("pg-bank-skew-fu", "for-update").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!((stats.households_below_zero, stats.total), (0, 20));
}

#[tokio::test]
async fn optimistic_stops_write_skew_by_checking_the_versions_of_the_accounts_only_read() {
    let (statuses, stats) = household_withdrawals("pg-bank-skew-opt", "optimistic").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!((stats.households_below_zero, stats.total), (0, 20));
}

/// A transfer a -> c of 10 at once with a read of every balance; the read.
async fn a_read_during_a_transfer(name: &str, mode: &str) -> AccountsBody {
    let app = spawn_one_bank(name, mode, LockOrder::Id, &abc()).await;

    let (moved, read) = tokio::join!(transfer(&app, "a", "c", 10), accounts(&app));

    assert_eq!(moved.status(), StatusCode::OK);
    let stats = bank_stats(&app).await;
    assert_eq!((stats.total, stats.lost_updates), (300, 0), "{stats:?}");
    read
}

#[tokio::test]
async fn an_unguarded_read_row_by_row_sees_half_a_transfer_and_a_total_off_by_its_amount() {
    let read = a_read_during_a_transfer("pg-bank-read-skew", "unguarded").await;
    assert_eq!(read.read, "rows");
    // a read before the transfer wrote (100), c after (110).
    let balances: Vec<i64> = read.accounts.iter().map(|a| a.balance).collect();
    assert_eq!((balances, read.total), (vec![100, 100, 110], 310));
}

#[tokio::test]
async fn a_for_update_read_is_one_snapshot_and_its_total_is_exact() {
    let read = a_read_during_a_transfer("pg-bank-read-snapshot", "for-update").await;
    assert_eq!((read.read.as_str(), read.total), ("snapshot", 300));
}

/// Two transfers of 10 at once from `from` (holding 15) to `to` (holding 0), in `atomic`: one
/// passes and one is refused for its funds; the stats after.
async fn two_atomic_transfers_one_covered(name: &str, from: &str, to: &str) -> BankStats {
    let bank = spec(&[(from, 15), (to, 0)], &[]);
    let app = spawn_one_bank(name, "atomic", LockOrder::Id, &bank).await;

    let (first, second) = tokio::join!(transfer(&app, from, to, 10), transfer(&app, from, to, 10));

    let statuses = sorted_statuses([first, second], "insufficient-funds").await;
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let stats = bank_stats(&app).await;
    assert_eq!((balance(&stats, from), balance(&stats, to)), (5, 10));
    assert_eq!(
        (
            stats.transfers,
            stats.transfer_sum,
            stats.refused,
            stats.lost_updates
        ),
        (1, 10, 1, 0)
    );
    stats
}

#[tokio::test]
async fn atomic_transfers_keep_every_unit_and_refuse_what_the_balance_does_not_cover() {
    // a -> b: the debited account sorts first, so its row is written first.
    two_atomic_transfers_one_covered("pg-bank-atomic", "a", "b").await;
}

#[tokio::test]
async fn atomic_transfers_to_the_smaller_id_credit_first_and_a_refused_debit_undoes_its_credit() {
    // b -> a: the credited account sorts first, so its row is written first.
    let stats = two_atomic_transfers_one_covered("pg-bank-atomic-credit", "b", "a").await;
    // The refused transfer's credit left nothing in a's books: exactly what it holds is expected.
    assert!(stats.accounts.iter().all(|a| a.drift == 0), "{stats:?}");
}

#[tokio::test]
async fn atomic_transfers_that_would_overflow_the_credit_are_refused_in_either_order_and_change_nothing(
) {
    // a -> m debits first and m's credit is refused after it; z -> m credits m first, refused.
    let bank = spec(&[("a", 100), ("m", i64::MAX - 5), ("z", 100)], &[]);
    let (_, app) = spawn_atomic_without_work("pg-bank-atomic-overflow", &bank).await;

    for from in ["a", "z"] {
        let response = transfer(&app, from, "m", 10).await;

        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{from}"
        );
        assert_eq!(
            problem_type(response).await,
            "urn:racebank:problem:balance-overflow"
        );
    }
    let stats = bank_stats(&app).await;
    let balances: Vec<i64> = stats.accounts.iter().map(|a| a.balance).collect();
    assert_eq!(balances, [100, i64::MAX - 5, 100]);
    assert_eq!((stats.transfers, stats.transfer_sum), (0, 0));
    assert!(stats.accounts.iter().all(|a| a.drift == 0), "{stats:?}");
}

#[tokio::test]
async fn atomic_household_check_reads_its_snapshot_so_a_withdrawal_held_at_its_row_lets_write_skew_through(
) {
    let bank = spec(&[("alice", 50), ("bob", 50)], &[&["alice", "bob"]]);
    let (account, app) = spawn_atomic_without_work("pg-bank-skew-atomic", &bank).await;
    // Another transaction holds alice's row: her withdrawal's statement takes its snapshot, sums
    // the household in it (100), and waits for the row.
    let mut holder = sql().await;
    let holder = holder.transaction().await.unwrap();
    holder
        .execute(
            "SELECT FROM racebank.bank_accounts WHERE bank = $1 AND id = 'alice' FOR UPDATE",
            &[&account.as_str()],
        )
        .await
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let watcher = sql().await;

    let (alice, bob) = tokio::join!(withdraw(&app, "alice", 80), async {
        // Bob's withdrawal runs while alice's waits, sees the household at 100 too, and commits.
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&holder_pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let bob = withdraw(&app, "bob", 80).await;
        holder.rollback().await.unwrap();
        bob
    });

    // Alice's check was judged in her snapshot, where bob still held 50: both pass.
    assert_eq!(
        (alice.status(), bob.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let stats = bank_stats(&app).await;
    assert_eq!(stats.households_below_zero, 1, "{stats:?}");
    assert_eq!(
        (stats.total, stats.withdrawals, stats.lost_updates),
        (-60, 2, 0)
    );
}

#[tokio::test]
async fn a_bank_reset_on_postgres_reopens_every_account_and_zeroes_the_ledger() {
    let app = spawn_one_bank("pg-bank-reset", "atomic", LockOrder::Id, &abc()).await;
    assert_eq!(transfer(&app, "a", "b", 30).await.status(), StatusCode::OK);

    let response = app
        .post_raw(
            "/bank/reset",
            Some("application/json"),
            r#"{"balances": {"a": 7}}"#,
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let stats = bank_stats(&app).await;
    let balances: Vec<i64> = stats.accounts.iter().map(|a| a.balance).collect();
    assert_eq!(balances, [7, 0, 0]);
    assert_eq!(
        (stats.transfers, stats.expected_total, stats.opening_total),
        (0, 7, 7)
    );
}

/// Sends `moves` (from, to, amount) to the replicas in turn, all at once; the statuses.
async fn transfers_across(replicas: &[TestApp], moves: &[(&str, &str, i64)]) -> Vec<StatusCode> {
    let requests = moves
        .iter()
        .enumerate()
        .map(|(i, &(from, to, amount))| async move {
            transfer(&replicas[i % replicas.len()], from, to, amount)
                .await
                .status()
        });
    join_all(requests).await
}

/// A burst of transfers among four accounts in both directions over three replicas: every safe
/// mode keeps every unit, loses no update, and every replica reports the same ledger.
async fn a_burst_across_three_replicas(mode: &str, order: LockOrder) {
    let bank = spec(&[("a", 100), ("b", 100), ("c", 100), ("d", 100)], &[]);
    let name = format!("pg-bank-3-{mode}-{order}");
    let (_, replicas) = spawn_bank(&name, 3, (mode, "0ms..2ms", order), &bank).await;
    let ids = ["a", "b", "c", "d"];
    let moves: Vec<(&str, &str, i64)> = (0..12)
        .map(|i: usize| {
            (
                ids[i % 4],
                ids[(i * 3 + 1) % 4],
                1 + i64::try_from(i).unwrap() % 5,
            )
        })
        .filter(|(from, to, _)| from != to)
        .collect();

    let statuses = transfers_across(&replicas, &moves).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{mode}: {statuses:?}"
    );
    let stats = bank_stats(&replicas[0]).await;
    for replica in &replicas[1..] {
        assert_eq!(bank_stats(replica).await, stats, "{mode}: one ledger");
    }
    assert_eq!(stats.transfers, moves.len() as u64, "{mode}");
    assert_eq!((stats.total, stats.expected_total), (400, 400), "{mode}");
    assert_eq!(stats.lost_updates, 0, "{mode}: {stats:?}");
    assert!(
        stats.accounts.iter().all(|a| a.drift == 0),
        "{mode}: {stats:?}"
    );
}

#[tokio::test]
async fn for_update_in_request_order_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("for-update", LockOrder::Request).await;
}

#[tokio::test]
async fn for_update_in_id_order_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("for-update", LockOrder::Id).await;
}

#[tokio::test]
async fn advisory_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("advisory", LockOrder::Id).await;
}

#[tokio::test]
async fn optimistic_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("optimistic", LockOrder::Id).await;
}

#[tokio::test]
async fn repeatable_read_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("repeatable-read", LockOrder::Id).await;
}

#[tokio::test]
async fn serializable_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("serializable", LockOrder::Id).await;
}

#[tokio::test]
async fn atomic_across_three_replicas_keeps_every_unit() {
    a_burst_across_three_replicas("atomic", LockOrder::Id).await;
}

/// One transfer to each of three replicas at once (a->b, b->c, c->a, 10 each), while the test
/// holds the bank's rows locked: a plain `SELECT` does not wait for a row lock, so all three read
/// every balance as it was, then each waits at its first `UPDATE`. Once all three wait (PostgreSQL
/// says so, `pg_blocking_pids`), the test lets go. The in-process guards of the three replicas
/// never saw each other: every account is written twice from the same read, one write erased per
/// account, and the total is off (by 10 or 30: three erasures of 10 cannot cancel).
async fn a_ring_of_transfers_across_three_replicas(mode: &str) {
    let (account, replicas) = spawn_bank(
        &format!("pg-bank-3-ring-{mode}"),
        3,
        (mode, "none", LockOrder::Id),
        &abc(),
    )
    .await;
    let mut holder = sql().await;
    let watcher = sql().await;
    let rows = holder.transaction().await.expect("begin");
    rows.execute(
        "SELECT FROM racebank.bank_accounts WHERE bank = $1 FOR UPDATE",
        &[&account.as_str()],
    )
    .await
    .expect("lock the bank's rows");
    let pid: i32 = rows
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("the holder's pid")
        .get(0);
    let release = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&pid],
                )
                .await
                .expect("count the waiting writes")
                .get(0);
            if waiting == 3 || tokio::time::Instant::now() > deadline {
                break waiting;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };

    let ring = transfers_across(&replicas, &[("a", "b", 10), ("b", "c", 10), ("c", "a", 10)]);
    let (statuses, waiting) = tokio::join!(ring, async {
        let waiting = release.await;
        rows.commit().await.expect("let go of the rows");
        waiting
    });

    assert_eq!(
        waiting, 3,
        "{mode}: every write waited for the test's locks"
    );
    assert_eq!(statuses, [StatusCode::OK; 3], "{mode}");
    let stats = bank_stats(&replicas[1]).await;
    assert_eq!(stats.expected_total, 300, "{mode}");
    assert_eq!(stats.lost_updates, 3, "{mode}: {stats:?}");
    assert!(
        stats.accounts.iter().all(|a| a.lost_updates == 1),
        "{mode}: {stats:?}"
    );
    assert_ne!(stats.total, 300, "{mode}: {stats:?}");
}

#[tokio::test]
async fn unguarded_across_three_replicas_erases_one_write_per_account_and_loses_the_total() {
    a_ring_of_transfers_across_three_replicas("unguarded").await;
}

#[tokio::test]
async fn a_mutex_across_three_replicas_erases_one_write_per_account_and_loses_the_total() {
    a_ring_of_transfers_across_three_replicas("mutex").await;
}

#[tokio::test]
async fn account_locks_across_three_replicas_erase_one_write_per_account_and_lose_the_total() {
    a_ring_of_transfers_across_three_replicas("account-locks").await;
}
