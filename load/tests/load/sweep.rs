//! `sweep`: its points against what a run shows, its CSV and JSON, its charts.

use clap::Parser;
use racebank_load::{Cli, Command, Point, SweepOpts, CSV_HEADER};

use crate::binary::racebank_load;
use crate::helpers::{spawn_server, test_database_url};

/// The `SweepOpts` of `racebank-load sweep ARGS`.
pub(crate) fn sweep_opts(args: &[&str]) -> SweepOpts {
    let mut argv = vec!["racebank-load", "sweep"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}")) {
        Cli {
            command: Some(Command::Sweep(opts)),
            ..
        } => opts,
        other => panic!("expected sweep, got {other:?}"),
    }
}

fn point<'a>(points: &'a [Point], mode: &str, concurrency: u64) -> &'a Point {
    points
        .iter()
        .find(|p| p.mode == mode && p.concurrency == concurrency)
        .unwrap_or_else(|| panic!("no point {mode} at {concurrency}: {points:?}"))
}

/// A fresh temporary directory of this test process for `name`.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("racebank-sweep-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_sweep_writes_the_numbers_its_runs_measured_as_csv_json_svg_and_png() {
    // rendezvous:2 makes the unguarded loss at concurrency 2 exact: the two requests of each pair
    // both read before either writes, so each pair keeps one deposit of two.
    let opts = sweep_opts(&[
        "--modes",
        "unguarded,atomic",
        "--work",
        "rendezvous:2",
        "-c",
        "2,4",
        "-n",
        "200",
    ]);
    let sweep = opts.to_sweep().expect("a valid sweep");
    let mut seen = 0;

    let points = racebank_load::sweep(&sweep, |_| seen += 1)
        .await
        .expect("sweep");

    assert_eq!(seen, 4);
    assert_eq!(points.len(), 4);
    let pair = point(&points, "unguarded", 2);
    assert_eq!(
        (pair.summary.requests, pair.summary.ok, pair.errors()),
        (200, 200, 0)
    );
    assert_eq!(pair.acked_deposit_sum(), 1000);
    assert_eq!(pair.lost_amount(), 500);
    assert_eq!(pair.lost_share_of_acked_deposits(), 0.5);
    assert_eq!(pair.summary.duplicates, Some(100));
    assert_eq!(pair.server_lost_updates(), Some(100));
    assert_eq!(pair.verdict(), "lost");
    // At 4 in flight, pairs also overlap each other: some loss, the exact share is luck.
    let four = point(&points, "unguarded", 4);
    assert!(four.lost_share_of_acked_deposits() > 0.0, "{four:?}");
    assert!(four.lost_share_of_acked_deposits() < 1.0, "{four:?}");
    assert_eq!(
        four.lost_share_of_acked_deposits(),
        four.lost_amount() as f64 / four.acked_deposit_sum() as f64
    );
    for c in [2, 4] {
        let atomic = point(&points, "atomic", c);
        assert_eq!(
            (atomic.summary.requests, atomic.summary.ok),
            (200, 200),
            "{atomic:?}"
        );
        assert_eq!(atomic.lost_amount(), 0, "{atomic:?}");
        assert_eq!(atomic.lost_share_of_acked_deposits(), 0.0);
        assert_eq!(atomic.summary.duplicates, Some(0));
        assert_eq!(atomic.server_lost_updates(), Some(0));
        assert_eq!(atomic.verdict(), "consistent");
        assert_eq!(atomic.work, "rendezvous:2");
    }

    let dir = temp_dir("small");
    let written =
        racebank_load::write_sweep_files(&sweep, &points, &dir, "small").expect("write the files");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "small.csv",
            "small.json",
            "small-lost.svg",
            "small-lost.png",
            "small-rps.svg",
            "small-rps.png"
        ]
    );

    // The CSV: the header, then each point's numbers.
    let csv = std::fs::read_to_string(dir.join("small.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let columns: Vec<&str> = CSV_HEADER.split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    let cell = |row: &[&str], name: &str| {
        row[columns.iter().position(|c| *c == name).unwrap()].to_string()
    };
    for (row, p) in rows.iter().zip(&points) {
        assert_eq!(row.len(), columns.len(), "{row:?}");
        assert_eq!(cell(row, "mode"), p.mode);
        assert_eq!(cell(row, "work"), "rendezvous:2");
        assert_eq!(cell(row, "concurrency"), p.concurrency.to_string());
        assert_eq!(cell(row, "requests"), "200");
        assert_eq!(cell(row, "acked_deposit_sum"), "1000");
        assert_eq!(cell(row, "lost_amount"), p.lost_amount().to_string());
        let share: f64 = cell(row, "lost_share_of_acked_deposits").parse().unwrap();
        assert!(
            (share - p.lost_share_of_acked_deposits()).abs() < 1e-6,
            "{row:?}"
        );
        assert_eq!(
            cell(row, "duplicates"),
            p.summary.duplicates.unwrap().to_string()
        );
        let rps: f64 = cell(row, "rps").parse().unwrap();
        assert!((rps - p.summary.rps).abs() <= 0.05, "{row:?} {p:?}");
        assert_eq!(cell(row, "verdict"), p.verdict());
    }
    let exact = rows
        .iter()
        .find(|row| row[0] == "unguarded" && row[2] == "2")
        .unwrap();
    assert_eq!(cell(exact, "lost_share_of_acked_deposits"), "0.500000");
    assert_eq!(cell(exact, "server_lost_updates"), "100");

    // The JSON: the same points.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("small.json")).unwrap()).unwrap();
    let array = json.as_array().expect("an array");
    assert_eq!(array.len(), 4);
    for (value, p) in array.iter().zip(&points) {
        assert_eq!(value["mode"], p.mode.as_str());
        assert_eq!(value["concurrency"], p.concurrency);
        assert_eq!(
            value["lost_amount"],
            i64::try_from(p.lost_amount()).unwrap()
        );
        assert_eq!(
            value["lost_share_of_acked_deposits"].as_f64(),
            Some(p.lost_share_of_acked_deposits())
        );
        assert_eq!(
            value["server_lost_updates"],
            p.server_lost_updates().unwrap()
        );
        // serde_json parses floats to within an ulp, not always exactly.
        let rps = value["rps"].as_f64().unwrap();
        assert!(
            (rps - p.summary.rps).abs() <= 1e-9 * p.summary.rps,
            "{value} {p:?}"
        );
    }

    // The charts: well-formed SVG documents and PNG images with something drawn on them.
    for chart in ["small-lost", "small-rps"] {
        let svg = std::fs::read_to_string(dir.join(format!("{chart}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{chart}: {}",
            &svg[..svg.len().min(80)]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{chart}");
        assert!(
            svg.contains("unguarded") && svg.contains("atomic"),
            "{chart}: no legend"
        );
        assert!(svg.contains("concurrency"), "{chart}: no x axis title");
        assert_eq!(svg.matches("<svg").count(), 1);

        let png = std::fs::read(dir.join(format!("{chart}.png"))).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png.as_slice()));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
        let frame = reader.next_frame(&mut pixels).expect("a PNG image");
        assert_eq!((frame.width, frame.height), (960, 600), "{chart}");
        let pixels = &pixels[..frame.buffer_size()];
        let red = pixels
            .chunks(3)
            .filter(|p| p[0] > 180 && p[1] < 80 && p[2] < 80)
            .count();
        assert!(
            red > 100,
            "{chart}: the unguarded line is missing ({red} red pixels)"
        );
        let white = pixels.chunks(3).filter(|p| p == &[255, 255, 255]).count();
        assert!(
            white > pixels.len() / 3 / 2,
            "{chart}: mostly white background"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_is_reset_before_each_point() {
    let server = spawn_server("mutex", "none", 0).await;
    let opts = sweep_opts(&[
        "--url",
        &server.url,
        "--label",
        "mine",
        "-c",
        "1,4",
        "-n",
        "100",
    ]);

    let points = racebank_load::sweep(&opts.to_sweep().expect("a valid sweep"), |_| {})
        .await
        .expect("sweep");
    let stats = server.stop().await;

    assert_eq!(points.len(), 2);
    for p in &points {
        assert_eq!((p.mode.as_str(), p.work.as_str()), ("mine", "-"));
        assert_eq!((p.summary.requests, p.lost_amount()), (100, 0), "{p:?}");
        assert_eq!(p.verdict(), "consistent");
    }
    // Reset before the second point: only its 100 deposits of 5 remain.
    assert_eq!(stats.balance, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_binary_writes_its_files_and_a_work_sweep_charts_the_work_window() {
    let dir = temp_dir("binary");
    let dir_text = dir.to_string_lossy().to_string();

    let output = racebank_load(&[
        "sweep",
        "--modes",
        "unguarded,mutex",
        "--work",
        "none,yield",
        "-c",
        "4",
        "-n",
        "50",
        "-o",
        &dir_text,
        "--name",
        "work",
    ])
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        5,
        "what each point sends, then one line per point: {stderr}"
    );
    assert!(
        stderr.starts_with("sweep: 4 points, 50 deposits of 5 per point"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("work-lost.png"), "{stdout}");
    let svg = std::fs::read_to_string(dir.join("work-lost.svg")).unwrap();
    assert!(svg.contains("the work window"), "the x axis is the work");
    assert!(svg.contains("yield"));
    let csv = std::fs::read_to_string(dir.join("work.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_flags_are_checked() {
    for args in [
        &["racebank-load", "sweep", "-c", "0"][..],
        &["racebank-load", "sweep", "-c", "1,x"],
        &["racebank-load", "sweep", "--modes", "careless"],
        &["racebank-load", "sweep", "--work", "soon"],
        &["racebank-load", "sweep", "-n", "5", "-z", "1s"],
        &["racebank-load", "sweep", "--amount", "0"],
        &[
            "racebank-load",
            "sweep",
            "--url",
            "http://127.0.0.1:1",
            "--modes",
            "mutex",
        ],
        &["racebank-load", "sweep", "--label", "x"],
    ] {
        assert!(
            Cli::try_parse_from(args).is_err(),
            "{args:?} should be refused"
        );
    }
    let opts = sweep_opts(&[]);
    assert_eq!(opts.concurrency, [1, 2, 4, 8, 16, 32, 64]);
    let sweep = opts.to_sweep().expect("a valid sweep");
    assert_eq!(
        sweep.limit,
        racebank_load::Limit::Duration(racebank_load::DEFAULT_POINT_DURATION)
    );
    // Three modes (unguarded, mutex, atomic) at seven concurrencies.
    assert!(
        sweep
            .opening_line()
            .starts_with("sweep: 21 points, deposits of 5 for 500ms"),
        "{}",
        sweep.opening_line()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_on_postgres_measures_the_same_exact_loss_as_in_memory() {
    let database_url = test_database_url();
    let opts = sweep_opts(&[
        "--store",
        "postgres",
        "--database-url",
        &database_url,
        "--pool-size",
        "4",
        "--modes",
        "unguarded,atomic",
        "--work",
        "rendezvous:2",
        "-c",
        "2",
        "-n",
        "100",
    ]);

    let points = racebank_load::sweep(&opts.to_sweep().expect("a valid sweep"), |_| {})
        .await
        .unwrap_or_else(|error| {
            panic!("the PostgreSQL sweep failed (is PostgreSQL running?): {error:#}")
        });

    // Each pair reads the same row before either writes: one deposit of two is lost, exactly, and
    // PostgreSQL's ledger counts the same 50 erasing writes.
    let pair = point(&points, "unguarded", 2);
    assert_eq!(
        (pair.summary.requests, pair.summary.ok, pair.lost_amount()),
        (100, 100, 250),
        "{pair:?}"
    );
    assert_eq!(pair.server_lost_updates(), Some(50), "{pair:?}");
    let atomic = point(&points, "atomic", 2);
    assert_eq!(
        (
            atomic.summary.requests,
            atomic.summary.ok,
            atomic.lost_amount()
        ),
        (100, 100, 0),
        "{atomic:?}"
    );
    assert_eq!(atomic.server_lost_updates(), Some(0), "{atomic:?}");
}

#[test]
fn a_sweep_refuses_a_store_of_its_own_beside_a_running_server_and_replicas_without_a_shared_store()
{
    let both = sweep_opts(&["--url", "http://127.0.0.1:1", "--store", "redis"]);
    let error = both.to_sweep().expect_err("--url and --store");
    assert!(error.to_string().contains("--store"), "{error}");
    let alone = sweep_opts(&["--replicas", "2"]);
    let error = alone.to_sweep().expect_err("--replicas in memory");
    assert!(error.to_string().contains("shared store"), "{error}");
}
