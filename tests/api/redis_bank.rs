//! The bank on the real local Redis, over HTTP: transfers that race, the household's write skew,
//! and three replicas sharing one bank, each outcome exact.
//!
//! `rendezvous:N` holds every request between its read and its write until N have arrived (or a
//! second has passed), so two requests sent together both read before either writes. Each test
//! has its own account id ([`TestAccount`]), hence its own bank's keys, and deletes them when it
//! passes.

use futures::future::join_all;
use racebank::wire::bank::BankStats;
use racebank::{Config, OpenError, ServeError};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::bank::bank_spec as spec;
use crate::helpers::{amount_body, spawn_with, TestApp};
use crate::redis::TestAccount;

/// One test's bank: its account, its servers, and the ids of its accounts.
struct TestBank {
    account: TestAccount,
    config: Config,
    apps: Vec<TestApp>,
}

/// A request to the bank: a transfer, or a withdrawal from one account.
#[derive(Debug, Clone, Copy)]
enum Request {
    Transfer(&'static str, &'static str, i64),
    Withdraw(&'static str, i64),
}

impl TestBank {
    /// `replicas` servers in `mode` with `work`, sharing a bank of `accounts` grouped in
    /// `households`; leases last `lease_ms`.
    async fn open(
        name: &str,
        mode: &str,
        work: &str,
        replicas: usize,
        accounts: &[(&str, i64)],
        households: &[&[&str]],
        lease_ms: u64,
    ) -> Self {
        let account = TestAccount::new(name).await;
        let mut config = account.config(mode, work, lease_ms);
        config.account.bank = Some(spec(accounts, households));
        let mut bank = Self {
            account,
            config,
            apps: Vec::new(),
        };
        for _ in 0..replicas {
            bank.add_replica().await;
        }
        bank
    }

    /// Starts one more server on the bank.
    async fn add_replica(&mut self) {
        let app = spawn_with(self.config.clone()).await;
        // The server opens its bank before it answers: wait until it does.
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        self.apps.push(app);
    }

    /// Sends request `i` to replica `i % replicas`, all at once; returns each status and body.
    async fn concurrently(&self, requests: &[Request]) -> Vec<(StatusCode, Value)> {
        let sent = requests.iter().enumerate().map(|(i, &request)| async move {
            let app = &self.apps[i % self.apps.len()];
            let response = match request {
                Request::Transfer(from, to, amount) => {
                    let body = json!({"from": from, "to": to, "amount": amount}).to_string();
                    app.post_raw("/transfers", Some("application/json"), &body)
                        .await
                }
                Request::Withdraw(from, amount) => {
                    let path = format!("/accounts/{from}/withdraw");
                    app.post_raw(&path, Some("application/json"), &amount_body(amount))
                        .await
                }
            };
            let status = response.status();
            (status, response.json().await.unwrap_or(Value::Null))
        });
        join_all(sent).await
    }

    /// The bank's accounting, from the last replica.
    async fn stats(&self) -> BankStats {
        let stats = self.apps.last().unwrap().stats().await;
        stats
            .bank
            .expect("a server with a bank reports it in /stats")
    }

    /// `GET /accounts` of the first replica.
    async fn accounts(&self) -> Value {
        self.apps[0].get("/accounts").await.json().await.unwrap()
    }

    /// Deletes the bank's keys and the account's.
    async fn delete(self) {
        let mut redis = self.account.redis();
        let pattern = format!("racebank:{{{}}}:bank:*", self.account.id());
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
        self.account.delete().await;
    }
}

/// Each account's balance, by id.
fn balances(stats: &BankStats) -> Vec<(&str, i64)> {
    stats
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.balance))
        .collect()
}

/// Each account's lost updates, by id.
fn lost(stats: &BankStats) -> Vec<(&str, u64)> {
    stats
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.lost_updates))
        .collect()
}

/// The identity every mode keeps at a quiet moment, bank-wide and per account.
fn assert_ledger_explains_total(stats: &BankStats) {
    assert_eq!(
        stats.total,
        stats.expected_total + stats.money_created - stats.money_destroyed,
        "{stats:?}"
    );
    for account in &stats.accounts {
        assert_eq!(
            account.drift,
            account.money_created - account.money_destroyed,
            "{account:?}"
        );
    }
}

fn statuses(answers: &[(StatusCode, Value)]) -> Vec<StatusCode> {
    answers.iter().map(|(status, _)| *status).collect()
}

const ABC: &[(&str, i64)] = &[("a", 100), ("b", 100), ("c", 100)];
const A_TO_B_AND_B_TO_C: &[Request] = &[
    Request::Transfer("a", "b", 10),
    Request::Transfer("b", "c", 10),
];
const A_TO_B_TWICE: &[Request] = &[
    Request::Transfer("a", "b", 10),
    Request::Transfer("a", "b", 10),
];
/// A household of two: `a` holds the household's 10, `b` nothing.
const HOUSEHOLD: &[(&str, i64)] = &[("a", 10), ("b", 0)];
const BOTH_WITHDRAW_10: &[Request] = &[Request::Withdraw("a", 10), Request::Withdraw("b", 10)];

#[tokio::test]
async fn unguarded_transfers_a_to_b_and_b_to_c_erase_exactly_one_write_to_b() {
    let bank = TestBank::open("bk-ung-abc", "unguarded", "rendezvous:2", 1, ABC, &[], 100).await;

    let answers = bank.concurrently(A_TO_B_AND_B_TO_C).await;

    assert_eq!(statuses(&answers), [StatusCode::OK; 2], "{answers:?}");
    let stats = bank.stats().await;
    assert_eq!(lost(&stats), [("a", 0), ("b", 1), ("c", 0)]);
    assert_eq!(stats.expected_total, 300);
    // Whichever transfer wrote B last erased the other's write: A->B's credit (destroyed) or
    // B->C's debit (created), exactly the amount.
    let (created, destroyed) = (stats.money_created, stats.money_destroyed);
    assert!(
        [(0, 10), (10, 0)].contains(&(created, destroyed)),
        "{stats:?}"
    );
    assert_eq!(stats.total, 300 + created - destroyed);
    assert_eq!(
        stats.accounts[1].balance,
        100 + i64::try_from(created - destroyed).unwrap()
    );
    assert_ledger_explains_total(&stats);
    assert_eq!(bank.accounts().await["total"], json!(stats.total));
    bank.delete().await;
}

#[tokio::test]
async fn unguarded_transfers_a_to_b_twice_keep_the_total_but_create_on_a_and_destroy_on_b() {
    let bank = TestBank::open("bk-ung-ab2", "unguarded", "rendezvous:2", 1, ABC, &[], 100).await;

    let answers = bank.concurrently(A_TO_B_TWICE).await;

    assert_eq!(statuses(&answers), [StatusCode::OK; 2], "{answers:?}");
    let stats = bank.stats().await;
    assert_eq!((stats.total, stats.expected_total), (300, 300));
    assert_eq!(balances(&stats), [("a", 90), ("b", 110), ("c", 100)]);
    let (a, b) = (&stats.accounts[0], &stats.accounts[1]);
    assert_eq!(
        (a.expected_balance, a.money_created, a.money_destroyed),
        (80, 10, 0)
    );
    assert_eq!(
        (b.expected_balance, b.money_created, b.money_destroyed),
        (120, 0, 10)
    );
    assert_eq!(stats.lost_updates, 2);
    assert_ledger_explains_total(&stats);
    bank.delete().await;
}

/// A race's name, its requests, and the balances that lose nothing.
type Race = (&'static str, &'static [Request], [(&'static str, i64); 3]);

/// Both races on `mode`, each on a bank of its own; asserts nothing was lost and returns the
/// retries each counted.
async fn both_races_lose_nothing(mode: &str) -> Vec<u64> {
    let cases: [Race; 2] = [
        (
            "abc",
            A_TO_B_AND_B_TO_C,
            [("a", 90), ("b", 100), ("c", 110)],
        ),
        ("ab2", A_TO_B_TWICE, [("a", 80), ("b", 120), ("c", 100)]),
    ];
    let races = cases.iter().map(|&(race, requests, expected)| async move {
        let name = format!("bk-{}-{race}", &mode[..3]);
        let bank = TestBank::open(&name, mode, "rendezvous:2", 1, ABC, &[], 100).await;
        let answers = bank.concurrently(requests).await;
        assert_eq!(
            statuses(&answers),
            [StatusCode::OK; 2],
            "{mode} {race}: {answers:?}"
        );
        let stats = bank.stats().await;
        assert_eq!(balances(&stats), expected, "{mode} {race}");
        assert_eq!(
            (stats.total, stats.expected_total),
            (300, 300),
            "{mode} {race}"
        );
        assert_eq!(stats.lost_updates, 0, "{mode} {race}: {stats:?}");
        assert_ledger_explains_total(&stats);
        bank.delete().await;
        stats.retries
    });
    join_all(races).await
}

#[tokio::test]
async fn optimistic_transfers_that_share_an_account_lose_nothing_and_redo_once() {
    let retries = both_races_lose_nothing("optimistic").await;

    assert_eq!(
        retries,
        [1, 1],
        "the second EXEC found B (or A) changed and redid once"
    );
}

#[tokio::test]
async fn atomic_transfers_that_share_an_account_lose_nothing() {
    let retries = both_races_lose_nothing("atomic").await;

    assert_eq!(retries, [0, 0]);
}

#[tokio::test]
async fn unguarded_household_withdrawals_both_pass_and_leave_the_household_below_zero() {
    let bank = TestBank::open(
        "bk-ung-skew",
        "unguarded",
        "rendezvous:2",
        1,
        HOUSEHOLD,
        &[&["a", "b"]],
        100,
    )
    .await;

    let answers = bank.concurrently(BOTH_WITHDRAW_10).await;

    // Each read both balances, saw the household's 10 cover its 10, and wrote its own account.
    assert_eq!(statuses(&answers), [StatusCode::OK; 2], "{answers:?}");
    let stats = bank.stats().await;
    assert_eq!(balances(&stats), [("a", 0), ("b", -10)]);
    assert_eq!(stats.households_below_zero, 1);
    assert_eq!(
        (stats.lost_updates, stats.total, stats.expected_total),
        (0, -10, -10)
    );
    bank.delete().await;
}

/// The household's two withdrawals on `mode`: exactly one passes, the other is refused with
/// `household-limit`; returns the stats.
async fn household_stops_write_skew(name: &str, mode: &str) -> BankStats {
    let bank = TestBank::open(
        name,
        mode,
        "rendezvous:2",
        1,
        HOUSEHOLD,
        &[&["a", "b"]],
        100,
    )
    .await;

    let answers = bank.concurrently(BOTH_WITHDRAW_10).await;

    let mut got = statuses(&answers);
    got.sort();
    assert_eq!(
        got,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{mode}: {answers:?}"
    );
    let (_, problem) = answers
        .iter()
        .find(|(status, _)| *status == StatusCode::CONFLICT)
        .unwrap();
    assert_eq!(
        problem["type"], "urn:racebank:problem:household-limit",
        "{mode}"
    );
    let stats = bank.stats().await;
    assert_eq!(stats.households_below_zero, 0, "{mode}: {stats:?}");
    assert_eq!((stats.withdrawals, stats.refused), (1, 1), "{mode}");
    assert_eq!((stats.total, stats.expected_total), (0, 0), "{mode}");
    assert_ledger_explains_total(&stats);
    bank.delete().await;
    stats
}

#[tokio::test]
async fn atomic_household_withdrawals_let_one_through_and_refuse_the_other() {
    let stats = household_stops_write_skew("bk-atomic-skew", "atomic").await;

    assert_eq!(stats.retries, 0);
}

#[tokio::test]
async fn optimistic_household_withdrawals_watch_the_household_and_refuse_the_redo() {
    let stats = household_stops_write_skew("bk-opt-skew", "optimistic").await;

    assert_eq!(
        stats.retries, 1,
        "the second EXEC saw the other's balance change"
    );
}

/// A cycle of three transfers (a->b, b->c, c->a), one on each of three replicas sharing the bank,
/// each with `work` between its read and its write. Returns the stats.
async fn three_replicas_run_a_cycle(mode: &str, work: &str, lease_ms: u64) -> BankStats {
    let name = format!("bk3-{mode}");
    let bank = TestBank::open(&name, mode, work, 3, ABC, &[], lease_ms).await;
    let cycle = [
        Request::Transfer("a", "b", 10),
        Request::Transfer("b", "c", 10),
        Request::Transfer("c", "a", 10),
    ];

    let answers = bank.concurrently(&cycle).await;

    assert_eq!(
        statuses(&answers),
        [StatusCode::OK; 3],
        "{mode}: {answers:?}"
    );
    let stats = bank.stats().await;
    assert_eq!((stats.transfers, stats.expected_total), (3, 300), "{mode}");
    assert_ledger_explains_total(&stats);
    bank.delete().await;
    stats
}

/// A rendezvous cannot cross replicas, so the three requests race in a wide window: each sleeps
/// 5 s between its read and its write, and all three read before any writes unless one reaches
/// its server 5 s after the others (they are sent at once, over loopback).
const WIDE: &str = "5s";

/// `unguarded` and `mutex` do their work between the read and the write. `account-locks` does it
/// between its first lock and the next, and then reads and writes with nothing between: three
/// replicas' sections meet only when they happen to run in the same millisecond, which no wait
/// can arrange across servers. Its loss across replicas is shown by a run of many transfers
/// instead (`load/tests/load/bank_replicas.rs`).
#[tokio::test]
async fn in_process_guards_lose_money_across_three_replicas() {
    let modes = ["unguarded", "mutex"];

    let runs = join_all(modes.map(|mode| three_replicas_run_a_cycle(mode, WIDE, 100))).await;

    for (mode, stats) in modes.iter().zip(runs) {
        // Every account is written twice and its second write erases its first: each ends 10
        // above or below its expected 100, so the total is off by 10 or 30, never 0.
        assert_eq!(lost(&stats), [("a", 1), ("b", 1), ("c", 1)], "{mode}");
        assert!(
            [-30, -10, 10, 30].contains(&stats.drift),
            "{mode}: the total is off by the erased writes: {stats:?}"
        );
        assert_eq!(
            stats.drift,
            stats.money_created - stats.money_destroyed,
            "{mode}"
        );
    }
}

#[tokio::test]
async fn store_guards_keep_the_total_across_three_replicas() {
    // Whatever the timing, these keep every unit: a rendezvous of three that no replica fills
    // holds each request for its second. The lease outlives that second.
    let modes = [("optimistic", 100), ("atomic", 100), ("lease", 3000)];

    let runs = join_all(
        modes.map(|(mode, lease_ms)| three_replicas_run_a_cycle(mode, "rendezvous:3", lease_ms)),
    )
    .await;

    for ((mode, _), stats) in modes.iter().zip(runs) {
        assert_eq!(stats.total, stats.expected_total, "{mode}: {stats:?}");
        assert_eq!(
            balances(&stats),
            [("a", 100), ("b", 100), ("c", 100)],
            "{mode}"
        );
        assert_eq!(stats.lost_updates, 0, "{mode}");
    }
}

/// `lease` takes a move's leases one at a time, and the first runs while the move waits for the
/// next. Here someone else holds `b`'s lease for 2 s; a transfer a->b takes `a`'s lease (1.5 s)
/// and waits for `b`; a transfer a->c takes `a` when it runs out, and waits at the rendezvous.
/// When `b` comes free, the first finds `a` no longer its own, gives `b` back and takes both
/// again once the second has written. Without that check the two would meet at the rendezvous,
/// both having read `a`, and one write to `a` would be erased. (Each lease outlives its holder's
/// second at the rendezvous, so only the wait can make one run out.)
#[tokio::test]
async fn lease_takes_its_leases_again_when_one_ran_out_while_it_waited_for_the_next() {
    let bank = TestBank::open("bk-lease-wait", "lease", "rendezvous:2", 1, ABC, &[], 1500).await;
    let mut redis = bank.account.redis();
    let lock = |id: &str| format!("racebank:{{{}}}:bank:lock:{id}", bank.account.id());
    let _: () = redis::cmd("SET")
        .arg(lock("b"))
        .arg("someone else")
        .arg("PX")
        .arg(2000)
        .query_async(&mut redis)
        .await
        .unwrap();
    let app = &bank.apps[0];
    let transfer = |to: &str| {
        let body = json!({"from": "a", "to": to, "amount": 10}).to_string();
        async move {
            app.post_raw("/transfers", Some("application/json"), &body)
                .await
                .status()
        }
    };

    let (first, second) = tokio::join!(transfer("b"), async {
        // Sent once the first holds `a`'s lease.
        for _ in 0..2000 {
            let held: bool = redis::cmd("EXISTS")
                .arg(lock("a"))
                .query_async(&mut redis)
                .await
                .unwrap();
            if held {
                return transfer("c").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the first transfer never took a's lease");
    });

    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    let stats = bank.stats().await;
    assert_eq!(lost(&stats), [("a", 0), ("b", 0), ("c", 0)]);
    assert_eq!(balances(&stats), [("a", 80), ("b", 110), ("c", 110)]);
    assert_ledger_explains_total(&stats);
    bank.delete().await;
}

#[tokio::test]
async fn a_replica_that_starts_later_joins_the_bank_and_a_reset_reopens_it_for_every_replica() {
    let mut bank = TestBank::open("bk-join", "atomic", "none", 1, ABC, &[], 100).await;
    let answers = bank.concurrently(&[Request::Transfer("a", "b", 30)]).await;
    assert_eq!(statuses(&answers), [StatusCode::OK]);

    bank.add_replica().await;

    let joined = bank.stats().await;
    assert_eq!(balances(&joined), [("a", 70), ("b", 130), ("c", 100)]);
    assert_eq!((joined.transfers, joined.transfer_sum), (1, 30));
    let reset = bank.apps[1]
        .post_raw(
            "/bank/reset",
            Some("application/json"),
            r#"{"balances": {"a": 5}}"#,
        )
        .await;
    assert_eq!(reset.status(), StatusCode::OK);
    let first = bank.apps[0].stats().await.bank.unwrap();
    assert_eq!(balances(&first), [("a", 5), ("b", 0), ("c", 0)]);
    assert_eq!(
        (first.transfers, first.opening_total, first.expected_total),
        (0, 5, 5)
    );
    bank.delete().await;
}

#[tokio::test]
async fn the_redis_bank_refuses_the_fenced_modes_naming_the_modes_it_runs() {
    for mode in ["fenced", "fenced-write-only"] {
        let account = TestAccount::new("bk-fenced").await;
        let mut config = account.config(mode, "none", 100);
        config.account.bank = Some(spec(ABC, &[]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();

        let outcome = racebank::serve(listener, config, async {}).await;

        let Err(ServeError::Open(error @ OpenError::NoBank { .. })) = outcome else {
            panic!("{mode}: expected an open error, got {outcome:?}");
        };
        let message = error.to_string();
        assert!(message.contains(&format!("`{mode}`")), "{message}");
        assert!(
            message.contains(
                "unguarded, mutex, semaphore:N, account-locks, optimistic, atomic and lease"
            ),
            "{message}"
        );
        account.delete().await;
    }
}
