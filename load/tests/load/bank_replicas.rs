//! `bank` and `demo --scenario bank` on three replicas of one bank in PostgreSQL and in Redis:
//! the store's own tools keep the money across replicas, a guard that lives in one process
//! (`mutex`) does not, and replicas that share no bank are refused before anything is sent.
//!
//! Each test's replicas name an account id of their own, which isolates their bank in the store.

use clap::Parser;
use racebank::{AccountConfig, BankSpec, Config, StoreConfig};
use racebank_load::{BankConclusion, BankReport, Cli, Command, Render as _};

use crate::bank::{assert_money_lost, bank_opts};
use crate::bank_scenarios::{bank_shape, unique};
use crate::demo::demo_opts;
use crate::helpers::{serve, test_database_url, TestServer};

/// Starts `replicas` servers in `mode` with `work`, sharing the bank of accounts `0..8` that
/// `store` keeps under `account`, and waits until each answers (a shared store's server opens
/// its bank first).
async fn spawn_replicas(
    (mode, work): (&str, &str),
    store: &StoreConfig,
    account: &str,
    replicas: usize,
) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let config = Config {
            account: AccountConfig {
                store: store.clone(),
                id: account.parse().expect("an account id"),
                bank: Some(BankSpec::numbered(8, 0, &[]).expect("a bank")),
                // `lease` is safe only while a section ends before its lease does: on a machine
                // starved by builds beside the test, the default 100 ms was outlasted (money
                // created in 2 runs of 5), which is the lease's lesson, not this test's.
                lease: std::time::Duration::from_secs(10),
                ..AccountConfig::memory(mode.parse().expect("mode"), work.parse().expect("work"))
            },
            ..Config::default()
        };
        servers.push(serve(config).await);
    }
    for server in &servers {
        let accounts = format!("{}/accounts", server.url);
        for _ in 0..100 {
            if reqwest::get(&accounts)
                .await
                .is_ok_and(|answer| answer.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    servers
}

/// `racebank-load bank URL URL URL ARGS` (`positional`), or with `--url` before each URL, run
/// in-process against three fresh replicas in `mode` on `store`; its `--history` must show
/// request `i` sent to replica `i % 3`.
async fn bank_on_three(
    mode: &str,
    store: &StoreConfig,
    positional: bool,
    args: &[&str],
) -> BankReport {
    let account = unique(&format!("replicas-{mode}"));
    let servers = spawn_replicas((mode, "2ms"), store, &account, 3).await;
    let mut argv = vec!["racebank-load", "bank", "--no-progress"];
    for server in &servers {
        if !positional {
            argv.push("--url");
        }
        argv.push(&server.url);
    }
    let history = std::env::temp_dir().join(format!("{account}.jsonl"));
    let history_arg = history.to_string_lossy().into_owned();
    argv.extend(["--reads", "0.2", "-c", "16", "--history", &history_arg]);
    argv.extend_from_slice(args);
    let Some(Command::Bank(opts)) = Cli::try_parse_from(argv).expect("flags").command else {
        panic!("expected bank");
    };
    let load = opts.to_bank().expect("a bank run");
    assert_eq!(load.targets.len(), 3, "{mode}: three replicas");
    let report = racebank_load::bank(load).await.unwrap_or_else(|error| {
        panic!("{mode}: the bank run failed (is the store running?): {error:#}")
    });
    for server in servers {
        server.stop().await;
    }
    let lines = std::fs::read_to_string(&history).expect("the history");
    let _ = std::fs::remove_file(&history);
    let mut seen = [0_u64; 3];
    for line in lines.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let (index, replica) = (line["index"].as_u64(), line["replica"].as_u64());
        assert_eq!(replica, index.map(|index| index % 3), "{mode}: {line}");
        seen[usize::try_from(replica.unwrap_or(0)).unwrap_or(0)] += 1;
    }
    assert!(seen.iter().all(|&sent| sent > 0), "{mode}: {seen:?}");
    report
}

/// What a safe mode must show on three replicas: consistent, exactly.
fn assert_consistent(mode: &str, report: &BankReport) {
    assert_eq!(
        report.conclusion,
        BankConclusion::Consistent,
        "{mode} on 3 replicas: {}",
        report.to_text()
    );
    assert!(report.verdict.anomalies.is_empty(), "{mode}");
    assert_eq!(report.verdict.final_total, Some(100), "{mode}");
    assert!(report.transfers.applied.count > 0, "{mode}");
}

/// The run where `unguarded` and `mutex` must lose money: few accounts, so that most pairs of
/// transfers share one.
const LOSING: &[&str] = &["--accounts", "4", "-n", "400"];
/// The run where the store's modes must keep it: Jepsen's 8 accounts, where the modes that redo
/// after a conflict (`serializable` above all) are not kept redoing for minutes.
const SAFE: &[&str] = &["-n", "200"];

// Margin, for the in-process guards below: 400 requests, 4 of 5 transfers, 16 in flight over 3
// replicas, each transfer 2 ms between its reads and its writes. Unguarded, every transfer's
// window overlaps about 15 others; under `mutex` each replica lets one transfer in at a time, so
// three windows (one per replica) are open at once for the whole run. Of two transfers among 4
// accounts, 5 in 6 share an account, and an overlap on a shared account erases a write. The test
// fails only if every one of those erasures left each account inside the range the acknowledged
// transfers allow; in 7 runs of each mode on each store here (debug build, 2 shared cores, 4 of
// them beside a clippy build) the final total ended 1 to 116 away from 100 with 3 or 4 accounts
// off their range, every time. `account-locks` (on Redis, where no exact test can make three
// replicas meet: `tests/api/redis_bank.rs`) does its 2 ms between its first lock and the next and
// then reads and writes at once, so its windows are narrower; still, three runs of this test
// erased 82, 100 and 94 updates of 282 to 295 transfers (final totals 81, 111 and 126), and three
// of the release build by hand 22, 38 and 33 of 207, 3 or 4 accounts off their range each time.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_postgres_replicas_unguarded_and_mutex_lose_money_and_every_store_mode_keeps_it() {
    let store = StoreConfig::Postgres {
        url: test_database_url(),
        pool_size: 8,
    };
    for mode in ["unguarded", "mutex"] {
        let report = bank_on_three(mode, &store, true, LOSING).await;
        assert_money_lost(&format!("{mode} on 3 replicas"), &report);
        assert_eq!(report.setup.urls.len(), 3, "{mode}");
    }
    for mode in [
        "for-update",
        "advisory",
        "optimistic",
        "repeatable-read",
        "serializable",
        "atomic",
    ] {
        assert_consistent(mode, &bank_on_three(mode, &store, true, SAFE).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_redis_replicas_the_in_process_guards_lose_money_and_every_store_mode_keeps_it() {
    let store = StoreConfig::Redis {
        url: racebank::DEFAULT_REDIS_URL.to_string(),
    };
    for mode in ["unguarded", "mutex", "account-locks"] {
        let report = bank_on_three(mode, &store, false, LOSING).await;
        assert_money_lost(&format!("{mode} on 3 replicas"), &report);
        assert_eq!(report.setup.urls.len(), 3, "{mode}");
    }
    for mode in ["optimistic", "atomic", "lease"] {
        assert_consistent(mode, &bank_on_three(mode, &store, false, SAFE).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_each_keep_their_own_bank_are_refused_before_the_run() {
    let servers = spawn_replicas(("atomic", "none"), &StoreConfig::Memory, "main", 2).await;

    let error = racebank_load::bank(bank_opts(
        &servers[0].url,
        &[servers[1].url.as_str(), "-n", "10"],
    ))
    .await
    .expect_err("two in-memory banks are not one");
    for server in servers {
        server.stop().await;
    }

    let message = format!("{error:#}");
    assert!(
        message.contains("replica 2 (") && message.contains("replicas must share one bank"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[tokio::test]
async fn a_memory_demo_on_several_replicas_is_refused_in_one_line_in_either_scenario() {
    let bank = racebank_load::bank_demo(&demo_opts(&["--scenario", "bank", "--replicas", "2"]))
        .await
        .expect_err("in-memory replicas share no bank");
    let races = racebank_load::demo(demo_opts(&["--replicas", "2"]))
        .await
        .expect_err("in-memory replicas share no account");
    for error in [bank, races] {
        let message = format!("{error:#}");
        assert!(
            message.starts_with("--replicas 2 needs a shared store")
                && message.contains("--store postgres"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}

/// The modes whose write-skew row varies from run to run on three PostgreSQL replicas, so that
/// neither the test nor the doc's shape holds them to an outcome: `repeatable-read` lets write
/// skew through only when both snapshots are taken before either commits, and `atomic`'s
/// household subquery is not safe at READ COMMITTED but is not made to race exactly here.
const SKEW_VARIES: [&str; 2] = ["repeatable-read", "atomic"];

/// [`bank_shape`] of the demo's text, with the write-skew rows of [`SKEW_VARIES`] reduced to
/// their mode.
fn replicas_shape(text: &str) -> Vec<String> {
    let mut skew = false;
    bank_shape(text)
        .into_iter()
        .map(|line| {
            skew |= line.starts_with("Write skew");
            match SKEW_VARIES
                .iter()
                .find(|mode| line.starts_with(&format!("row `{mode}` held")))
            {
                Some(mode) if skew => format!("row `{mode}`"),
                _ => line,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_bank_demo_on_three_replicas_loses_money_under_in_process_guards_only() {
    let database_url = test_database_url();
    let opts = demo_opts(&[
        "--scenario",
        "bank",
        "--store",
        "postgres",
        "--database-url",
        &database_url,
        "--replicas",
        "3",
        "--work",
        "5ms",
        "-n",
        "300",
        "-c",
        "16",
    ]);

    let demo = racebank_load::bank_demo(&opts)
        .await
        .unwrap_or_else(|error| panic!("the demo failed (is PostgreSQL running?): {error:#}"));

    assert_eq!(demo.replicas, 3);
    let modes = racebank_load::bank_modes(racebank::StoreKind::Postgres);
    assert_eq!(demo.transfers.len(), modes.len());
    // Margin: 300 requests, 16 in flight over 3 replicas, 5 ms between a transfer's reads and
    // its writes. An in-process guard keeps one section open per replica, three at once, but
    // half the requests are reads, which hold the guard over all 8 rows (8 windows), so two
    // transfers on different replicas overlap less often than unguarded: a row may show only
    // wrong-total reads (read skew, which one replica under the guard never shows) with the money
    // right. So each such row must be called anything but consistent, and money must be created
    // or destroyed in at least one of the four. In 8 runs at 300 requests (PostgreSQL, debug
    // build, 2 shared cores, beside two spinning processes), 27 of 28 such rows created or
    // destroyed money, and one (`mutex`) was read skew only; the `bank` tests above hold `mutex`
    // itself to losing money, with few accounts. In the write-skew rounds alice's and bob's
    // withdrawals go to two replicas at once and meet in their 5 ms windows: 8 to 10 rounds of 10
    // skewed under each in-process guard in those runs.
    let unguarded_here = ["unguarded", "mutex", "semaphore:4", "account-locks"];
    for (row, skew) in demo.transfers.iter().zip(&demo.write_skew) {
        let unsafe_here = unguarded_here.contains(&row.mode.as_str());
        assert_eq!(row.in_process_guard, unsafe_here && row.mode != "unguarded");
        if unsafe_here {
            assert!(
                matches!(row.verdict, BankConclusion::Lost | BankConclusion::ReadSkew),
                "{}: {}",
                row.mode,
                row.verdict_line
            );
            assert_eq!(
                skew.verdict,
                BankConclusion::Lost,
                "{}: write skew",
                skew.mode
            );
        } else {
            assert_eq!(
                row.verdict,
                BankConclusion::Consistent,
                "{}: {}",
                row.mode,
                row.verdict_line
            );
            if !SKEW_VARIES.contains(&skew.mode.as_str()) {
                let verdict = skew.verdict;
                assert_eq!(
                    verdict,
                    BankConclusion::Consistent,
                    "{}: write skew",
                    skew.mode
                );
            }
        }
    }
    assert!(
        (demo.transfers.iter())
            .any(|row| row.in_process_guard && row.verdict == BankConclusion::Lost),
        "no in-process guard lost money on 3 replicas: {:?}",
        demo.transfers
    );
    let text = demo.to_text();
    assert!(
        text.contains("On 3 replicas, mutex, semaphore:4 and account-locks guarded the section inside each server's process, which sees only that replica's requests: a request on another replica never waited for it, so "),
        "{text}"
    );
    assert!(
        text.contains("for-update, advisory, optimistic, repeatable-read, serializable and atomic guarded it in the store (postgres), which every replica shares, and kept the money on 3 replicas."),
        "{text}"
    );
    let marker =
        "<!-- shape checked: racebank-load demo --scenario bank --store postgres --replicas 3 -->";
    let blocks = crate::docs::marked_blocks(marker);
    let (place, _, block) = blocks.first().expect("docs/bank.md's replicas demo block");
    assert_eq!(
        replicas_shape(&block.join("\n")),
        replicas_shape(&text),
        "{place}: the bank demo on replicas changed shape; paste a new run of the command above the block"
    );
}
