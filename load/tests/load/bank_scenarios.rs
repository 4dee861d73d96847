//! `bank --scenario write-skew|double-spend` and `demo --scenario bank` against the real server,
//! in memory and on PostgreSQL. With `--work rendezvous:2` the two withdrawals of a round meet
//! between their reads and their writes, so the race is exact: every round shows it or none.

use clap::Parser;
use racebank::{AccountConfig, AccountId, BankSpec, Config, StoreConfig};
use racebank_load::{BankConclusion, Cli, Command, Render as _, RoundsReport};

use crate::docs::marked_blocks;
use crate::helpers::{serve, test_database_url, TestServer};

/// Starts a server whose bank holds `alice=50,bob=50` (a household) and `0=10`, in `mode` with
/// `work`, on `store` under the store's account `account` (which isolates it on a shared store).
async fn spawn(mode: &str, work: &str, store: StoreConfig, account: &str) -> TestServer {
    let id = |name: &str| name.parse::<AccountId>().expect("an id");
    let bank = BankSpec::new(
        vec![(id("alice"), 50), (id("bob"), 50), (id("0"), 10)],
        &[vec![id("alice"), id("bob")]],
    )
    .expect("a bank");
    serve(Config {
        account: AccountConfig {
            store,
            id: id(account),
            bank: Some(bank),
            ..AccountConfig::memory(mode.parse().expect("mode"), work.parse().expect("work"))
        },
        ..Config::default()
    })
    .await
}

/// `racebank-load bank URL ARGS`, run in-process.
async fn rounds(url: &str, args: &[&str]) -> RoundsReport {
    let mut argv = vec!["racebank-load", "bank", url];
    argv.extend_from_slice(args);
    let Some(Command::Bank(opts)) = Cli::try_parse_from(argv).expect("flags").command else {
        panic!("expected bank");
    };
    let load = opts.to_rounds().expect("a rounds run");
    // A shared store's server opens its bank before it answers; give it a moment.
    for _ in 0..100 {
        if reqwest::get(format!("{url}/accounts")).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    racebank_load::bank_rounds(load)
        .await
        .expect("the rounds ran")
}

/// An account id no other test run uses: it isolates a bank on a shared store.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_gets_through_every_round_unguarded_and_never_under_atomic() {
    for (mode, skewed) in [("unguarded", true), ("atomic", false)] {
        let server = spawn(mode, "rendezvous:2", StoreConfig::Memory, "main").await;
        let report = rounds(&server.url, &["--scenario", "write-skew", "--rounds", "5"]).await;
        server.stop().await;

        let check = &report.check;
        assert_eq!(check.rounds, 5, "{mode}");
        if skewed {
            assert_eq!(check.anomalies, 5, "{mode}: {}", report.to_text());
            assert_eq!(report.verdict, BankConclusion::Lost);
            assert_eq!(report.exit_code(), 1);
            let line = report.verdict_line();
            assert!(
                line.starts_with("NOT CONSISTENT: write skew in 5 of 5 rounds")
                    && line.contains("alice -10 and bob -10: household -20"),
                "{line}"
            );
        } else {
            assert_eq!(
                (check.anomalies, check.held),
                (0, 5),
                "{mode}: {}",
                report.to_text()
            );
            assert_eq!((check.applied, check.refused), (5, 5), "{mode}");
            assert_eq!(report.exit_code(), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_spend_pays_twice_only_in_an_unsafe_mode() {
    // Exact: two withdrawals of 9 from 10 meet at the rendezvous after both read 10.
    let server = spawn("unguarded", "rendezvous:2", StoreConfig::Memory, "main").await;
    let report = rounds(
        &server.url,
        &[
            "--scenario",
            "double-spend",
            "--withdrawals",
            "2",
            "--rounds",
            "4",
        ],
    )
    .await;
    server.stop().await;
    assert_eq!(report.check.anomalies, 4, "{}", report.to_text());
    assert!(report
        .verdict_line()
        .starts_with("NOT CONSISTENT: double spend in 4 of 4 rounds"));

    // The safe modes, 1 to 16 at once with 1 ms of work: at most one withdrawal in any round.
    for mode in ["mutex", "account-locks", "optimistic", "atomic"] {
        let server = spawn(mode, "1ms", StoreConfig::Memory, "main").await;
        let report = rounds(
            &server.url,
            &["--scenario", "double-spend", "--rounds", "16"],
        )
        .await;
        server.stop().await;
        let check = &report.check;
        assert_eq!(
            (check.anomalies, check.held),
            (0, 16),
            "{mode}: {}",
            report.to_text()
        );
        assert_eq!(check.applied, 16, "{mode}: one per round");
        assert_eq!(report.exit_code(), 0, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_that_is_no_household_is_refused_with_the_command_that_makes_one() {
    let server = spawn("mutex", "none", StoreConfig::Memory, "main").await;
    let mut argv = vec!["racebank-load", "bank", server.url.as_str()];
    argv.extend(["--scenario", "write-skew", "--household", "alice,0"]);
    let Some(Command::Bank(opts)) = Cli::try_parse_from(argv).expect("flags").command else {
        panic!("expected bank");
    };
    let error = racebank_load::bank_rounds(opts.to_rounds().expect("a run"))
        .await
        .expect_err("alice and 0 are no household");
    server.stop().await;
    let message = format!("{error:#}");
    assert!(
        message.contains("are not a household")
            && message.contains("racebank --accounts alice=50,0=50 --households alice+0"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_write_skew_gets_through_repeatable_read_and_not_serializable() {
    let store = StoreConfig::Postgres {
        url: test_database_url(),
        pool_size: 4,
    };
    // Both transactions read before either writes. Serializable fails one at commit (40001); its
    // redo waits out the rendezvous alone (1 s), then is refused: exact, 5 rounds held of 5.
    // Repeatable-read is not exact through this command (a round whose two withdrawals miss each
    // other at the rendezvous holds): margin, at least one round of 5 skewed. The test passed 8 runs
    // of 8 here (load average 3 to 9); a helper once saw 0 of 5 while four builds ran beside it.
    for (mode, skewed) in [("repeatable-read", true), ("serializable", false)] {
        let account = unique(&format!("skew-{mode}"));
        let server = spawn(mode, "rendezvous:2", store.clone(), &account).await;
        let report = rounds(&server.url, &["--scenario", "write-skew", "--rounds", "5"]).await;
        server.stop().await;
        let check = &report.check;
        if skewed {
            assert!(check.anomalies >= 1, "{mode}: {}", report.to_text());
        } else {
            assert_eq!(
                (check.anomalies, check.held),
                (0, 5),
                "{mode}: {}",
                report.to_text()
            );
            assert_eq!(check.refused, 5, "{mode}");
        }
    }
}

/// The bank demo's text reduced to what must not drift: headings and sentences with their
/// numbers blanked, each row to its mode and whether it held, each conclusion to its start.
pub(crate) fn bank_shape(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("$ "))
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("  ") && cells.first() != Some(&"mode") {
                let held = line.ends_with("consistent") || line.ends_with("holds");
                return format!("row `{}` held: {held}", cells[0]);
            }
            if line.starts_with("In short:") {
                return "In short:".to_string();
            }
            line.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect::<String>()
                .split('#')
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("#")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_demo_prints_a_row_per_mode_and_the_readme_shows_its_shape() {
    let Some(Command::Demo(opts)) =
        Cli::try_parse_from(["racebank-load", "demo", "--scenario", "bank"])
            .expect("flags")
            .command
    else {
        panic!("expected demo");
    };
    let demo = racebank_load::bank_demo(&opts.to_demo())
        .await
        .expect("demo");

    let modes = racebank_load::bank_modes(racebank::StoreKind::Memory);
    assert_eq!(demo.transfers.len(), modes.len());
    assert_eq!(demo.write_skew.len(), modes.len());
    for (row, skew) in demo.transfers.iter().zip(&demo.write_skew) {
        // Margin: 300 requests with 1 ms of work, 64 in flight; the unsafe modes erased writes in
        // every one of 20 runs (semaphore:4 the fewest: 15 to 40 money created or destroyed), and a
        // safe mode is never called anything but consistent.
        let safe = !["unguarded", "semaphore:4"].contains(&row.mode.as_str());
        let expected = if safe {
            BankConclusion::Consistent
        } else {
            BankConclusion::Lost
        };
        assert_eq!(row.verdict, expected, "{}: {}", row.mode, row.verdict_line);
        assert_eq!(skew.verdict, expected, "{}: write skew", skew.mode);
    }
    let blocks = marked_blocks("<!-- shape checked: racebank-load demo --scenario bank -->");
    let (place, _, block) = blocks.first().expect("README's bank demo block");
    assert_eq!(
        bank_shape(&block.join("\n")),
        bank_shape(&demo.to_text()),
        "{place}: the bank demo changed shape; paste a new run of the command above the block"
    );
}
