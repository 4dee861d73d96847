//! `sweep --scenario bank`: its points against what a `bank` run shows, its CSV, JSON and charts,
//! a running bank, and the flags it refuses.

use racebank::LockOrder;
use racebank_load::{BankPoint, SweepOpts, BANK_CSV_HEADER};

use crate::bank::spawn_bank;
use crate::binary::racebank_load;
use crate::sweep::{sweep_opts, temp_dir};

/// The `SweepOpts` of `racebank-load sweep --scenario bank ARGS`.
fn bank_sweep_opts(args: &[&str]) -> SweepOpts {
    sweep_opts(&[&["--scenario", "bank"][..], args].concat())
}

/// Margin: with 1 ms of work between each request's reads and writes (and between the rows of an
/// unguarded read of every balance), 400 requests at 4 and at 16 in flight. In 20 sweeps of these
/// points every unguarded point ended `lost`, with 159 to 193 wrong-total reads of about 200 and
/// money created or destroyed from 2 to 46 (at 200 requests, 39 points of 40 moved money and every
/// sweep had one that did). For this test to fail, both unguarded points would have to leave the
/// total exactly right, and every account inside its range, after dozens of erased writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_bank_sweep_finds_the_unguarded_money_and_writes_its_points_as_csv_json_and_charts()
{
    let opts = bank_sweep_opts(&[
        "--modes",
        "unguarded,mutex,atomic",
        "--work",
        "1ms",
        "-c",
        "4,16",
        "-n",
        "400",
    ]);
    let sweep = opts.to_sweep().expect("a valid sweep");
    let mut seen = 0;

    let points = racebank_load::sweep_bank(&sweep, |_| seen += 1)
        .await
        .expect("bank sweep");

    assert_eq!((seen, points.len()), (6, 6));
    let unguarded: Vec<&BankPoint> = points
        .iter()
        .filter(|p| p.row.mode == "unguarded")
        .collect();
    assert_eq!(unguarded.len(), 2);
    for p in &unguarded {
        assert_eq!(p.verdict(), "lost", "{p:?}");
        assert!(p.row.wrong_total_reads > 0, "{p:?}");
        assert!(p.server_lost_updates > Some(0), "{p:?}");
    }
    assert!(
        unguarded.iter().any(|p| p.money_moved() > 0),
        "no unguarded point created or destroyed money: {unguarded:?}"
    );
    for p in points.iter().filter(|p| p.row.mode != "unguarded") {
        assert_eq!(p.verdict(), "consistent", "{p:?}");
        assert_eq!(
            (
                p.row.wrong_total_reads,
                p.row.money_created,
                p.row.money_destroyed,
                p.server_lost_updates
            ),
            (0, 0, 0, Some(0)),
            "{p:?}"
        );
    }
    for p in &points {
        assert_eq!((p.row.requests, p.errors, p.work.as_str()), (400, 0, "1ms"));
        assert!(p.transfers > 0 && p.row.transfers_per_s > 0.0, "{p:?}");
    }

    let dir = temp_dir("bank-small");
    let written = racebank_load::write_bank_sweep_files(&sweep, &points, &dir, "bank")
        .expect("write the files");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "bank.csv",
            "bank.json",
            "bank-money.svg",
            "bank-money.png",
            "bank-transfers.svg",
            "bank-transfers.png"
        ]
    );

    // The CSV: the header, then each point's numbers.
    let csv = std::fs::read_to_string(dir.join("bank.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(BANK_CSV_HEADER));
    let columns: Vec<&str> = BANK_CSV_HEADER.split(',').collect();
    for column in [
        "mode",
        "work",
        "concurrency",
        "transfers_per_s",
        "rps",
        "p99_ms",
        "wrong_total_reads",
        "money_created",
        "money_destroyed",
        "deadlocks",
        "redos",
        "verdict",
    ] {
        assert!(columns.contains(&column), "no column {column}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 6);
    let cell = |row: &[&str], name: &str| {
        row[columns.iter().position(|c| *c == name).unwrap()].to_string()
    };
    for (row, p) in rows.iter().zip(&points) {
        assert_eq!(row.len(), columns.len(), "{row:?}");
        assert_eq!(cell(row, "mode"), p.row.mode);
        assert_eq!(cell(row, "concurrency"), p.concurrency.to_string());
        assert_eq!(cell(row, "requests"), "400");
        assert_eq!(cell(row, "transfers"), p.transfers.to_string());
        assert_eq!(
            cell(row, "wrong_total_reads"),
            p.row.wrong_total_reads.to_string()
        );
        assert_eq!(cell(row, "money_created"), p.row.money_created.to_string());
        assert_eq!(
            cell(row, "money_destroyed"),
            p.row.money_destroyed.to_string()
        );
        let tps: f64 = cell(row, "transfers_per_s").parse().unwrap();
        assert!((tps - p.row.transfers_per_s).abs() <= 0.05, "{row:?} {p:?}");
        assert_eq!(cell(row, "verdict"), p.verdict());
    }

    // The JSON: the same points, with the same fields as the CSV's columns.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bank.json")).unwrap()).unwrap();
    let array = json.as_array().expect("an array");
    assert_eq!(array.len(), 6);
    for (value, p) in array.iter().zip(&points) {
        let mut fields: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = columns.clone();
        fields.sort_unstable();
        expected.sort_unstable();
        assert_eq!(fields, expected);
        assert_eq!(value["mode"], p.row.mode.as_str());
        assert_eq!(
            value["money_created"],
            i64::try_from(p.row.money_created).unwrap()
        );
        assert_eq!(value["verdict"], p.verdict());
    }

    // The charts: SVG documents naming every mode, and PNG images of the same size as a sweep's.
    for chart in ["bank-money", "bank-transfers"] {
        let svg = std::fs::read_to_string(dir.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for mode in ["unguarded", "mutex", "atomic", "concurrency"] {
            assert!(svg.contains(mode), "{chart}: no {mode}");
        }
        let png = std::fs::read(dir.join(format!("{chart}.png"))).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
        let reader = decoder.read_info().expect("a PNG header");
        assert_eq!((reader.info().width, reader.info().height), (960, 600));
    }
    let svg = std::fs::read_to_string(dir.join("bank-money.svg")).unwrap();
    assert!(svg.contains("Money created and destroyed"), "{svg}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_sweep_of_a_running_bank_resets_it_before_each_point() {
    let server = spawn_bank("atomic", "none", 8, LockOrder::Id).await;
    let opts = bank_sweep_opts(&[
        "--url",
        &server.url,
        "--label",
        "mine",
        "-c",
        "1,4",
        "-n",
        "100",
    ]);

    let points = racebank_load::sweep_bank(&opts.to_sweep().expect("a valid sweep"), |_| {})
        .await
        .expect("bank sweep");
    server.stop().await;

    // Each point opens the bank with the whole total in account 0 and checks it did, so the
    // second point does not start from where the first ended.
    assert_eq!(points.len(), 2);
    for p in &points {
        assert_eq!((p.row.mode.as_str(), p.work.as_str()), ("mine", "-"));
        assert_eq!((p.row.requests, p.verdict()), (100, "consistent"), "{p:?}");
    }
    assert_eq!(
        points.iter().map(|p| p.concurrency).collect::<Vec<_>>(),
        [1, 4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_sweep_binary_writes_its_files_under_the_bank_name() {
    let dir = temp_dir("bank-binary");
    let dir_text = dir.to_string_lossy().to_string();

    let output = racebank_load(&[
        "sweep",
        "--scenario",
        "bank",
        "--modes",
        "atomic",
        "-c",
        "2",
        "-n",
        "40",
        "-o",
        &dir_text,
    ])
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with("sweep: 1 points, 40 requests of Jepsen's bank per point"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(stderr.contains("consistent"), "{stderr}");
    for file in ["sweep-bank.csv", "sweep-bank.json", "sweep-bank-money.png"] {
        assert!(dir.join(file).exists(), "no {file}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bank_sweep_flags_are_one_line_naming_the_cause() {
    for (args, cause) in [
        (
            &["--modes", "unguarded,for-update"][..],
            "mode `for-update` does not run on the memory store",
        ),
        (
            &["--store", "redis", "--modes", "fenced"],
            "mode `fenced` runs no bank on the redis store",
        ),
        (&["--amount", "3"], "--amount is for deposits"),
        (&["--replicas", "3"], "--replicas needs a shared store"),
    ] {
        let mut argv = vec!["sweep", "--scenario", "bank", "-c", "1", "-n", "1"];
        argv.extend_from_slice(args);

        let output = racebank_load(&argv).await;

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(cause), "{args:?}: {stderr}");
    }
    // And a bank flag in a sweep of deposits.
    let output = racebank_load(&["sweep", "--reads", "0.3"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "racebank-load: --reads is for --scenario bank: a sweep of deposits sends deposits of --amount"
    );
}

#[test]
fn a_bank_sweep_defaults_to_every_mode_the_stores_bank_runs() {
    for (store, kind) in [
        ("memory", racebank::StoreKind::Memory),
        ("redis", racebank::StoreKind::Redis),
    ] {
        let modes = racebank_load::bank_modes(kind);
        assert!(
            modes.iter().all(|mode| mode.runs_bank_on(kind)),
            "{modes:?}"
        );

        let sweep = bank_sweep_opts(&["--store", store])
            .to_sweep()
            .expect("a valid sweep");

        // One point per mode at each of the 7 default concurrencies.
        let line = sweep.opening_line();
        assert!(
            line.starts_with(&format!("sweep: {} points, ", modes.len() * 7)),
            "{store}: {line}"
        );
    }
}

/// Margin: as `bank_replicas.rs`'s (4 accounts, 400 requests, 16 in flight over 3 replicas, 2 ms
/// between reads and writes), where every one of 7 runs of `mutex` here erased writes; this test
/// asks only that the server counted one, which every such run did many times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_sweep_on_three_postgres_replicas_shows_the_mutex_losing_and_atomic_keeping_the_money(
) {
    let database_url = crate::helpers::test_database_url();
    let opts = bank_sweep_opts(&[
        "--store",
        "postgres",
        "--database-url",
        &database_url,
        "--pool-size",
        "8",
        "--replicas",
        "3",
        "--modes",
        "mutex,atomic",
        "--work",
        "2ms",
        "--accounts",
        "4",
        "-c",
        "16",
        "-n",
        "400",
    ]);
    let sweep = opts.to_sweep().expect("a valid sweep");

    let points = racebank_load::sweep_bank(&sweep, |_| {})
        .await
        .expect("bank sweep");

    let [mutex, atomic] = &points[..] else {
        panic!("two points: {points:?}");
    };
    assert_eq!(mutex.row.mode, "mutex");
    assert!(mutex.server_lost_updates > Some(0), "{mutex:?}");
    assert_ne!(mutex.verdict(), "consistent", "{mutex:?}");
    assert_eq!(atomic.verdict(), "consistent", "{atomic:?}");
    assert_eq!(
        (atomic.money_moved(), atomic.server_lost_updates),
        (0, Some(0)),
        "{atomic:?}"
    );
}
