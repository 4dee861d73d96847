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
