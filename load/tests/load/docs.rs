//! The docs' `racebank-load` outputs, held to the real ones.
//!
//! - A block marked `<!-- checked: racebank-load -->` in README.md or docs/*.md is a transcript:
//!   each `$ racebank-load ARGS` line is run (the built binary, with no `DATABASE_URL`,
//!   `REDIS_URL` or `RACEBANK_*` in its environment) and what it prints, stdout then stderr, must
//!   be the lines up to the next `$ `; `[..]` in a line stands for anything. A changed `--help` or
//!   usage error fails here until the docs follow.
//! - A block marked `<!-- shape checked: racebank-load demo ... -->` is a demo's output, whose
//!   numbers are from one run: [`shape`] keeps what must not drift (the lines of text with their
//!   numbers blanked, each table's columns and row names), and `demo.rs` compares it with a real
//!   run's.
//! - A Markdown table after `<!-- from: docs/NAME.csv -->` is a sweep's CSV pivoted by hand (one
//!   row per concurrency, a column per mode and figure: a bank sweep's too): [`table_from_csv`] computes it from the
//!   committed CSV, rounded as the docs round, so the tables cannot drift from the data
//!   `scripts/docs-pictures` writes.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every chapter, by name.
fn documents() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string()];
    let mut chapters: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| {
            entry
                .expect("a docs entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| {
            std::path::Path::new(name)
                .extension()
                .is_some_and(|ext| ext == "md")
        })
        .map(|name| format!("docs/{name}"))
        .collect();
    chapters.sort();
    names.extend(chapters);
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(root().join(&name)).expect("read a doc");
            (name, text)
        })
        .collect()
}

/// The fenced blocks that follow a line starting with `marker`: where, the marker's line, and the
/// block's lines.
pub(crate) fn marked_blocks(marker: &str) -> Vec<(String, String, Vec<String>)> {
    let mut found = Vec::new();
    for (name, text) in documents() {
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if !line.starts_with(marker) {
                continue;
            }
            let open = (at + 1..lines.len())
                .find(|&i| lines[i].starts_with("```"))
                .expect("a fenced block after the marker");
            let close = (open + 1..lines.len())
                .find(|&i| lines[i].starts_with("```"))
                .expect("the block's closing fence");
            let body = lines[open + 1..close]
                .iter()
                .map(|l| (*l).to_string())
                .collect();
            found.push((format!("{name}:{}", at + 1), (*line).to_string(), body));
        }
    }
    found
}

/// Whether `actual` is `expected`, where each `[..]` of `expected` stands for anything.
fn matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split("[..]");
    let Some(mut rest) = actual.strip_prefix(parts.next().unwrap_or("")) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A command line's words: single or double quotes keep spaces.
pub(crate) fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, ' ') => words.extend(word.take()),
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// What `racebank-load ARGS` prints, stdout then stderr, in a clean environment.
fn run(args: &[String]) -> Vec<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_racebank-load"));
    command.args(args).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RACEBANK_") || name == "DATABASE_URL" || name == "REDIS_URL" {
            command.env_remove(name);
        }
    }
    let output = command.output().expect("run racebank-load");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.lines().map(str::to_string).collect()
}

#[test]
fn every_checked_racebank_load_transcript_of_the_docs_prints_what_the_docs_show() {
    let blocks = marked_blocks("<!-- checked: racebank-load -->");
    assert!(
        !blocks.is_empty(),
        "no checked racebank-load block in the docs"
    );
    let mut differences = Vec::new();
    for (place, _, body) in &blocks {
        let mut at = 0;
        while at < body.len() {
            let command = body[at].strip_prefix("$ racebank-load").unwrap_or_else(|| {
                panic!(
                    "{place}: a checked block runs `$ racebank-load ..`, not {}",
                    body[at]
                )
            });
            let end = (at + 1..body.len())
                .find(|&i| body[i].starts_with("$ "))
                .unwrap_or(body.len());
            let expected = &body[at + 1..end];
            let actual = run(&words(command));
            let same = expected.len() == actual.len()
                && expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
            if !same {
                differences.push(format!(
                    "{place}: `racebank-load{command}` prints\n{}\nbut the doc shows\n{}\n",
                    actual.join("\n"),
                    expected.join("\n")
                ));
            }
            at = end;
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// The line under a demo table that names its fastest and slowest safe modes.
const FASTEST: &str = "Fastest of the modes that kept every update:";

/// What must not drift in a demo's output: each line with its numbers blanked (`#`) and its runs
/// of spaces made one, a table row reduced to its name (the text before its replicas; the header
/// names the columns), a conclusion to the mode it is about, and the fastest/slowest line to its
/// opening words (which mode is fastest changes with the machine).
pub(crate) fn shape(text: &str) -> Vec<String> {
    let mut concluding = false;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            // Under "In short:", a mode's outcome can change with the machine (a short lease
            // that happened to hold): its label is the shape.
            if line == "In short:" || !line.starts_with("  ") {
                concluding = line == "In short:";
            } else if concluding && !line.contains(FASTEST) {
                let label = line[2..].split("  ").next().unwrap_or_default();
                return format!("conclusion for `{label}`");
            }
            if let Some(at) = line.find(FASTEST) {
                return line[..at + FASTEST.len()].trim().to_string();
            }
            let cells: Vec<&str> = line.split_whitespace().collect();
            if line.starts_with("  ") && cells.len() >= 15 {
                if cells.first() == Some(&"mode") {
                    return cells.join(" ");
                }
                // The name ends where the replicas column, a plain number, begins.
                let name: Vec<&str> = (cells.iter())
                    .take_while(|cell| cell.parse::<u64>().is_err())
                    .copied()
                    .collect();
                // Its cells are the header's; the verdict's words vary with the run.
                return format!("row `{}`", name.join(" "));
            }
            let mut blanked = String::new();
            let mut in_number = false;
            for c in cells.join(" ").chars() {
                let digit = c.is_ascii_digit() || (in_number && (c == '.' || c == ','));
                if digit && !in_number {
                    blanked.push('#');
                } else if !digit {
                    blanked.push(c);
                }
                in_number = digit;
            }
            blanked
        })
        .collect()
}

#[test]
fn a_shape_keeps_the_words_and_columns_and_blanks_the_numbers() {
    let one = shape("Concurrent deposits (500 deposits of 5)\n  atomic    1  yes  500  19180  6.26  500  0  0  2500  2500  0  no  0  0  consistent\nIn short:\n  lease (2ms lease)  lost 98 % (2450 of 2500)");
    let two = shape("Concurrent deposits (60 deposits of 5)\n  atomic    1  yes  500  9180  3.1  500  0  0  2500  2500  0  no  0  0  consistent\nIn short:\n  lease (2ms lease)  kept every update");
    assert_eq!(one, two);
    assert_eq!(one[0], "Concurrent deposits (# deposits of #)");
    assert_eq!(one[1], "row `atomic`");
    assert_eq!(one[3], "conclusion for `lease (2ms lease)`");
}

/// A sweep CSV: its rows, each a map from column name to cell.
fn read_csv(path: &str) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(root().join(path)).expect("read a sweep CSV");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a CSV header").split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{path}: `{line}`");
            (header.iter().zip(cells))
                .map(|(name, cell)| ((*name).to_string(), cell.to_string()))
                .collect()
        })
        .collect()
}

/// `23924.9` as the docs show it: whole, and thousands apart (`23 925`). Ties go to the even
/// neighbour, as Rust's formatting rounds (`470.5` is `470`).
fn rounded_rps(rps: f64) -> String {
    let digits = format!("{rps:.0}");
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    grouped
}

/// A share of the acknowledged money lost, as the docs show it: `0 %`, `<0.1 %` or `93.6 %`.
fn rounded_share(share: f64) -> String {
    if share == 0.0 {
        "0 %".to_string()
    } else if share * 100.0 < 0.05 {
        "<0.1 %".to_string()
    } else {
        format!("{:.1} %", share * 100.0)
    }
}

/// The table a doc shows for `csv`, given its header: the first column is the concurrency, each
/// other is `MODE lost`, `MODE req/s` or `MODE p99 ms` (a bank sweep: `MODE transfers/s`,
/// `MODE created`, `MODE destroyed`, `MODE wrong-total`, counts as the CSV has them); one row per concurrency of the CSV, in
/// its order. Every mode of the CSV has a column, and a (mode, concurrency) is one CSV row.
fn table_from_csv(csv: &str, header: &[String]) -> Vec<Vec<String>> {
    let rows = read_csv(csv);
    assert_eq!(
        header.first().map(String::as_str),
        Some("concurrency"),
        "{csv}"
    );
    let mut concurrencies: Vec<u64> = (rows.iter())
        .map(|row| row["concurrency"].parse().expect("a concurrency"))
        .collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let columns: Vec<(&str, &str)> = (header[1..].iter())
        .map(|column| column.split_once(' ').expect("`MODE FIGURE`"))
        .collect();
    for row in &rows {
        let mode = row["mode"].as_str();
        assert!(
            columns.iter().any(|(m, _)| *m == mode),
            "{csv}: mode `{mode}` has no column in the table"
        );
    }
    let mut table = vec![header.to_vec()];
    for concurrency in concurrencies {
        let mut line = vec![concurrency.to_string()];
        for (mode, figure) in &columns {
            let point: Vec<_> = (rows.iter())
                .filter(|row| row["mode"] == *mode && row["concurrency"] == concurrency.to_string())
                .collect();
            assert_eq!(point.len(), 1, "{csv}: `{mode}` at {concurrency}: one row");
            let number = |name: &str| -> f64 { point[0][name].parse().expect(name) };
            line.push(match *figure {
                "lost" => rounded_share(number("lost_share_of_acked_deposits")),
                "req/s" => rounded_rps(number("rps")),
                "p99 ms" => format!("{:.1}", number("p99_ms")),
                "transfers/s" => rounded_rps(number("transfers_per_s")),
                "created" => point[0]["money_created"].clone(),
                "destroyed" => point[0]["money_destroyed"].clone(),
                "wrong-total" => point[0]["wrong_total_reads"].clone(),
                other => panic!(
                    "{csv}: no figure `{other}` (lost, req/s, p99 ms; a bank sweep's transfers/s, created, destroyed, wrong-total)"
                ),
            });
        }
        table.push(line);
    }
    table
}

/// A Markdown table row's cells, trimmed.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// Each table after `<!-- from: docs/NAME.csv -->` is the one its CSV makes; and every sweep
/// table (one whose first column is `concurrency`) has such a marker, so none is left unchecked.
#[test]
fn every_sweep_table_of_the_docs_is_what_its_csv_says() {
    const FROM: &str = "<!-- from: ";
    let mut checked = 0;
    let mut differences = Vec::new();
    for (name, text) in documents() {
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if line.starts_with("| concurrency |") {
                let marked = at >= 2 && lines[at - 2].starts_with(FROM) && lines[at - 1].is_empty();
                assert!(
                    marked,
                    "{name}:{}: a sweep table without `{FROM}docs/NAME.csv -->` and a blank line above it",
                    at + 1
                );
            }
            let Some(csv) = line.strip_prefix(FROM) else {
                continue;
            };
            let csv = csv.strip_suffix(" -->").expect("`<!-- from: PATH -->`");
            let table: Vec<Vec<String>> = (lines[at + 2..].iter())
                .take_while(|line| line.starts_with('|'))
                .filter(|line| !line.starts_with("|---"))
                .map(|line| cells(line))
                .collect();
            assert!(
                !table.is_empty(),
                "{name}:{}: no table after the marker",
                at + 1
            );
            let expected = table_from_csv(csv, &table[0]);
            if table != expected {
                let show = |rows: &[Vec<String>]| {
                    (rows.iter())
                        .map(|row| format!("| {} |", row.join(" | ")))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                differences.push(format!(
                    "{name}:{}: the table shows\n{}\nbut {csv} says\n{}\n",
                    at + 1,
                    show(&table),
                    show(&expected)
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no `{FROM}` table in the docs");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn a_sweep_figure_is_rounded_as_the_docs_round_it() {
    assert_eq!(rounded_rps(23924.9), "23 925");
    assert_eq!(rounded_rps(470.5), "470");
    assert_eq!(rounded_rps(1014.0), "1 014");
    assert_eq!(rounded_rps(152_197.8), "152 198");
    assert_eq!(rounded_share(0.0), "0 %");
    assert_eq!(rounded_share(0.000_039), "<0.1 %");
    assert_eq!(rounded_share(0.501_119), "50.1 %");
}
