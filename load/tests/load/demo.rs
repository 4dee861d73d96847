//! `demo` in-process and through the binary.

use clap::Parser;
use racebank_load::{Cli, Command, Render, Row};

use crate::docs::{marked_blocks, shape};

use crate::helpers::test_database_url;

/// `demo ARGS`, as the command line describes it.
pub(crate) fn demo_opts(args: &[&str]) -> racebank_load::Demo {
    let mut argv = vec!["racebank-load", "demo"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).expect("demo flags").command {
        Some(Command::Demo(opts)) => opts.to_demo(),
        other => panic!("expected demo, got {other:?}"),
    }
}

fn row<'a>(rows: &'a [Row], scenario: &str, mode: &str) -> &'a Row {
    rows.iter()
        .find(|row| row.scenario == scenario && row.mode == mode)
        .unwrap_or_else(|| panic!("no row for {scenario}/{mode}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_the_race_in_unguarded_mode_and_none_in_the_safe_modes() {
    let rows = racebank_load::demo(demo_opts(&[])).await.expect("demo");

    assert_eq!(rows.len(), 10, "two scenarios times five modes");
    // README's copy is a real run: its numbers are that run's, its lines, tables and rows this one's.
    let readme = marked_blocks("<!-- shape checked: racebank-load demo -->");
    let (place, _, block) = readme.first().expect("README's demo block is marked");
    assert_eq!(
        shape(&block.join("\n")),
        shape(&rows.to_text()),
        "{place}: the demo's output changed shape; paste a new run (cargo run --release -p racebank-load -- demo)"
    );
    let text = rows.to_text();
    assert!(text.contains("In short:"), "{text}");
    assert!(
        text.contains("  mutex        kept every update\n"),
        "{text}"
    );
    let deposits = row(&rows, "deposits", "unguarded");
    assert!(
        !deposits.summary.consistent && deposits.lost_amount() > 0,
        "{deposits:?}"
    );
    let withdrawals = row(&rows, "withdrawals", "unguarded");
    assert!(
        !withdrawals.summary.consistent && withdrawals.summary.overdraft,
        "{withdrawals:?}"
    );
    for scenario in ["deposits", "withdrawals"] {
        for mode in ["mutex", "optimistic", "atomic"] {
            let row = row(&rows, scenario, mode);
            assert!(row.safe, "{row:?}");
            assert!(
                row.summary.consistent && row.lost_amount() == 0 && !row.summary.overdraft,
                "{row:?}"
            );
            assert_eq!(
                row.summary.expected_balance,
                Some(i128::from(row.final_balance())),
                "{row:?}"
            );
        }
        assert!(!row(&rows, scenario, "semaphore:4").safe);
    }
    // At most 10 withdrawals of 10 fit in 100: the safe modes pay out exactly that.
    assert_eq!(row(&rows, "withdrawals", "mutex").summary.ok, 10);
}

#[tokio::test]
async fn the_demo_binary_prints_json_rows_and_exits_0() {
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_racebank-load"))
            .args(["demo", "--json", "-n", "100", "--modes", "unguarded,atomic"])
            .output()
    })
    .await
    .expect("join")
    .expect("the binary runs");

    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON array");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 4);
    for row in rows {
        for field in [
            "scenario",
            "mode",
            "requests",
            "rps",
            "p99_ms",
            "expected_balance",
            "final_balance",
            "lost_amount",
            "overdraft",
            "consistent",
        ] {
            assert!(row.get(field).is_some(), "missing `{field}` in {row}");
        }
        assert_eq!(row["consistent"], row["mode"] == "atomic", "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_demo_shows_the_mutex_safe_on_one_replica_and_losing_on_three() {
    let database_url = test_database_url();
    let opts = demo_opts(&[
        "--store",
        "postgres",
        "--database-url",
        &database_url,
        "--pool-size",
        "4",
        "--replicas",
        "3",
        "--modes",
        "mutex",
        "--work",
        "5ms",
        "-n",
        "60",
        "-c",
        "16",
    ]);

    let rows = racebank_load::demo(opts).await.unwrap_or_else(|error| {
        panic!("the PostgreSQL demo failed (is PostgreSQL running?): {error:#}")
    });

    let mutex = |replicas| {
        rows.iter()
            .find(|row| row.scenario == "deposits" && row.replicas == replicas)
            .unwrap_or_else(|| panic!("no deposits row for {replicas} replicas: {rows:?}"))
    };
    let (one, three) = (mutex(1), mutex(3));
    assert!(one.safe && one.summary.consistent, "{one:?}");
    assert_eq!(one.pool_size, Some(4));
    // Three replicas each let one request into its 5 ms window at once, with 16 requests in
    // flight the whole run: of 60 deposits, none overlapping another replica's window would take
    // a scheduler that runs the replicas in strict turns. Any overlap loses an update.
    assert!(
        !three.safe && !three.summary.consistent && three.lost_amount() > 0,
        "{three:?}"
    );
    // The lesson under the table, said from these rows.
    let text = rows.to_text();
    let lesson = conclusion(&text, "mutex");
    assert!(
        lesson.contains("kept every update on 1 replica, lost "),
        "{lesson}"
    );
    assert!(
        lesson.ends_with("on 3: an in-process guard covers one process only"),
        "{lesson}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_demo_shows_a_lease_failing_once_the_work_outlasts_it() {
    let opts = demo_opts(&[
        "--store",
        "redis",
        "--replicas",
        "1",
        "--modes",
        "lease,fenced",
        "-n",
        "60",
        "-c",
        "16",
    ]);

    let rows = racebank_load::demo(opts)
        .await
        .unwrap_or_else(|error| panic!("the Redis demo failed (is Redis running?): {error:#}"));

    let lease = |lease: &str| {
        rows.iter()
            .find(|row| row.scenario == "deposits" && row.lease.as_deref() == Some(lease))
            .unwrap_or_else(|| panic!("no deposits row with a {lease} lease: {rows:?}"))
    };
    let (holds, expires) = (lease("100ms"), lease("2ms"));
    assert!(holds.safe && holds.summary.consistent, "{holds:?}");
    // 10 ms of work under a 2 ms lease: each holder's lock expires while it works and the next
    // waiter (16 in flight) takes it, so holders overlap throughout the run.
    assert!(
        !expires.safe && !expires.summary.consistent && expires.lost_amount() > 0,
        "{expires:?}"
    );
    // Under the table: why the short lease lost, and that a fenced mode keeping every update by
    // turning requests away says how many went through.
    let text = rows.to_text();
    let line = |label: &str| conclusion(&text, label);
    let short_lease = line("lease (2ms lease, 10ms work)");
    assert!(
        short_lease.ends_with(": the 2ms lease expires while the 10ms work goes on"),
        "{short_lease}"
    );
    let fenced = (rows.iter())
        .find(|row| {
            row.scenario == "deposits"
                && row.mode == "fenced"
                && row.lease.as_deref() == Some("2ms")
        })
        .expect("the fenced row with the short lease");
    let fenced_line = line("fenced (2ms lease, 10ms work)");
    if fenced.summary.ok < fenced.summary.requests {
        assert!(
            fenced_line.contains(&format!(
                "kept every update, but {} of {} went through",
                fenced.summary.ok, fenced.summary.requests
            )),
            "{fenced_line}"
        );
    }
}

/// The line for `label` under the first table (deposits), after its "In short:".
fn conclusion(text: &str, label: &str) -> String {
    (text.lines())
        .skip_while(|line| *line != "In short:")
        .find(|line| line.starts_with(&format!("  {label}  ")))
        .unwrap_or_else(|| panic!("no conclusion for {label}:\n{text}"))
        .to_string()
}

/// The demo's `Err` as one line, with its causes, and how long it took to come.
async fn demo_failure(args: &[&str]) -> (String, std::time::Duration) {
    let started = std::time::Instant::now();
    let error = racebank_load::demo(demo_opts(args))
        .await
        .expect_err("the demo must not run");
    (format!("{error:#}"), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_demo_on_a_missing_database_says_so_at_once_with_the_command_that_creates_it() {
    let (line, took) = demo_failure(&[
        "--store",
        "postgres",
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/no_such_racebank_demo_db",
    ])
    .await;

    assert!(
        took < std::time::Duration::from_secs(3),
        "took {took:?}: {line}"
    );
    assert!(line.contains("could not start"), "{line}");
    assert!(
        line.contains("127.0.0.1:5432/no_such_racebank_demo_db"),
        "names the URL: {line}"
    );
    assert!(line.contains("createdb"), "says how to fix it: {line}");
    assert!(!line.contains("never answered"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_demo_on_a_port_where_nothing_listens_says_so_at_once_with_a_start_command_for_that_port(
) {
    let (line, took) =
        demo_failure(&["--store", "redis", "--redis-url", "redis://127.0.0.1:6380"]).await;

    assert!(
        took < std::time::Duration::from_secs(3),
        "took {took:?}: {line}"
    );
    assert!(line.contains("could not start"), "{line}");
    assert!(
        line.contains("cannot reach Redis at redis://127.0.0.1:6380"),
        "{line}"
    );
    assert!(
        line.contains("--port 6380"),
        "starts Redis on the URL's port: {line}"
    );
    assert!(!line.contains("never answered"), "{line}");
}

/// A demo with few requests per row, compared in shape with the doc's block marked `marker` (a
/// full run's): the same headings, tables, rows and conclusions.
async fn assert_the_demo_has_the_docs_shape(marker: &str, args: &[&str]) {
    let rows = racebank_load::demo(demo_opts(args))
        .await
        .unwrap_or_else(|error| panic!("the demo failed: {error:#}"));
    let blocks = marked_blocks(marker);
    let (place, _, block) = blocks
        .first()
        .unwrap_or_else(|| panic!("no block marked {marker}"));
    assert_eq!(
        shape(&block.join("\n")),
        shape(&rows.to_text()),
        "{place}: the demo's output changed shape; paste a new run of the command above the block"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_demo_has_the_shape_the_postgres_chapter_shows() {
    let database_url = test_database_url();
    assert_the_demo_has_the_docs_shape(
        "<!-- shape checked: racebank-load demo --store postgres --replicas 3 -->",
        &[
            "--store",
            "postgres",
            "--replicas",
            "3",
            "--database-url",
            &database_url,
            "-n",
            "40",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_demo_has_the_shape_the_redis_chapter_shows() {
    assert_the_demo_has_the_docs_shape(
        "<!-- shape checked: racebank-load demo --store redis --replicas 3 -->",
        &["--store", "redis", "--replicas", "3", "-n", "40"],
    )
    .await;
}
