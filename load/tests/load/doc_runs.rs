//! The docs' run summaries of `racebank-load`, held to a real run's shape.
//!
//! A block marked `<!-- shape checked: racebank-load ARGS against racebank SERVER_ARGS | NOTES -->`
//! is (an excerpt of) what `racebank-load ARGS` prints against a server started with SERVER_ARGS
//! (`--mode`, `--work`, `--initial-balance`). The test starts that server in-process on a port of
//! its own and gives its URL with `--url`, where the doc's command uses port 3000. NOTES, split by
//! `;`, name lines by their label: `optional: LABEL` for a line that comes and goes between runs
//! (`Lost, gross`), `label only: LABEL` for a line whose words are the run's outcome. Every other
//! line is compared with its numbers blanked and its runs of spaces made one; the doc's lines must
//! be a run of the real output's lines, in order (a `...` line stands for lines left out). A `^C`
//! line sends SIGINT after 20 deposits, `$ echo $?` checks the exit status, and the notes
//! `another client` and `killed` add deposits of 7 during the run or kill the server after 50.
//! Consecutive lines shaped alike (a burst's answers) count as one. A first word that is not a flag
//! is a subcommand (`burst`): the URL goes after it.

use crate::helpers::{spawn_server, wait_for_deposits, KillableServer, TestServer};

/// A marked block: its place, the load generator's arguments, the server's, the notes, the lines.
struct Block {
    place: String,
    load: Vec<String>,
    server: Vec<String>,
    optional: Vec<String>,
    label_only: Vec<String>,
    lines: Vec<String>,
    /// A `^C` line: the run is sent SIGINT once the server acknowledged some deposits.
    interrupt: bool,
    /// The exit status after `$ echo $?`.
    exit: Option<i32>,
    /// The note `another client`: deposits of 7 in a loop, from before the run to its end.
    another_client: bool,
    /// The note `killed`: the server is taken down as by SIGKILL after 50 deposits.
    killed: bool,
}

/// A block's lines without its `$ racebank-load ..` line, with its `^C` and `$ echo $?` read.
fn output_lines(lines: &[String]) -> (Vec<String>, bool, Option<i32>) {
    let mut kept = Vec::new();
    let (mut interrupt, mut exit) = (false, None);
    let mut rest = lines.iter();
    while let Some(line) = rest.next() {
        if line == "^C" {
            interrupt = true;
        } else if line == "$ echo $?" {
            exit = rest
                .next()
                .map(|code| code.parse().expect("an exit status"));
        } else if !line.starts_with("$ racebank-load") {
            kept.push(line.clone());
        }
    }
    (kept, interrupt, exit)
}

const MARKER: &str = "<!-- shape checked: racebank-load ";

fn blocks() -> Vec<Block> {
    let mut found = Vec::new();
    for (place, marker, lines) in crate::docs::marked_blocks(MARKER) {
        let what = marker[MARKER.len()..].trim_end_matches("-->").trim();
        if what.starts_with("demo") {
            continue;
        }
        let (command, notes) = what.split_once(" | ").unwrap_or((what, ""));
        let command = format!(" {command}");
        let (load, server) = command
            .split_once(" against racebank")
            .expect("`.. against racebank ARGS`");
        let notes: Vec<&str> = notes.split(';').map(str::trim).collect();
        let named = |prefix: &str| -> Vec<String> {
            (notes.iter())
                .filter_map(|note| note.strip_prefix(prefix))
                .map(|label| label.trim().to_string())
                .collect()
        };
        let (lines, interrupt, exit) = output_lines(&lines);
        found.push(Block {
            another_client: notes.iter().any(|note| note.starts_with("another client")),
            killed: notes.iter().any(|note| note.starts_with("killed")),
            interrupt,
            exit,
            place,
            load: load.split_whitespace().map(str::to_string).collect(),
            server: server.split_whitespace().map(str::to_string).collect(),
            optional: named("optional:"),
            label_only: named("label only:"),
            lines,
        });
    }
    found
}

/// A summary line's label: the text before its first `:` (`Lost, gross`), or the whole line.
fn label(line: &str) -> &str {
    line.trim().split(':').next().unwrap_or_default()
}

/// A line with its numbers blanked (`#`, a sign included) and its runs of spaces made one.
pub(crate) fn blanked(line: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in line
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
    {
        let digit = c.is_ascii_digit() || (in_number && (c == '.' || c == ','));
        if digit && !in_number {
            out.push('#');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out.replace("-#", "#")
}

/// Whether the doc's `line` has the shape of the real `actual`.
fn same_shape(block: &Block, line: &str, actual: &str) -> bool {
    if block.label_only.iter().any(|l| l == label(line)) {
        return label(line) == label(actual) && line.contains(':') && actual.contains(':');
    }
    blanked(line) == blanked(actual)
}

/// Where the doc's lines differ from the real ones, if they do.
fn compare(block: &Block, actual: &[String]) -> Option<String> {
    let mut shown: Vec<&String> = block
        .lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut real: Vec<&String> = actual.iter().filter(|l| !l.trim().is_empty()).collect();
    // A list of lines shaped alike (a burst's answers) is one line: its length is the run's.
    shown.dedup_by(|a, b| blanked(a) == blanked(b));
    real.dedup_by(|a, b| blanked(a) == blanked(b));
    let first = shown.first()?;
    let Some(mut at) = real.iter().position(|a| same_shape(block, first, a)) else {
        return Some(format!(
            "the doc's first line\n  {first}\nis not in the run"
        ));
    };
    let mut skipping = false;
    for line in &shown {
        if *line == "..." {
            skipping = true;
            continue;
        }
        if std::mem::take(&mut skipping) {
            while real.get(at).is_some_and(|a| !same_shape(block, line, a)) {
                at += 1;
            }
        }
        let optional = block.optional.iter().any(|l| l == label(line));
        if real.get(at).is_some_and(|a| same_shape(block, line, a)) {
            at += 1;
        } else if real.get(at).is_some_and(|a| label(a) == label(line)) || !optional {
            return Some(format!(
                "the doc's line\n  {line}\nhas not the shape of the run's {at}th"
            ));
        }
        while real.get(at).is_some_and(|a| {
            block.optional.iter().any(|l| l == label(a))
                && !shown.iter().any(|s| label(s) == label(a))
        }) {
            at += 1;
        }
    }
    None
}

/// Runs the block's command against a server of its own: what it printed (stderr into stdout, as
/// a terminal shows them) and its exit status.
async fn run(block: &Block) -> (Vec<String>, Option<i32>) {
    let value = |name: &str, default: &str| -> String {
        (block.server.iter())
            .position(|a| a == name)
            .map_or(default.to_string(), |at| block.server[at + 1].clone())
    };
    let balance: i64 = value("--initial-balance", "0").parse().expect("a balance");
    let (mode, work) = (value("--mode", "unguarded"), value("--work", "1ms"));
    let killable = block.killed.then(|| KillableServer::start(&mode, &work));
    let server = match &killable {
        Some(killable) => Server::Killable(killable.url.clone()),
        None => Server::Stoppable(spawn_server(&mode, &work, balance).await),
    };
    let other = block
        .another_client
        .then(|| tokio::spawn(deposits_of_seven(server.url())));
    if other.is_some() {
        wait_for_deposits(&server.url(), 20).await;
    }
    let child = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" 2>&1"])
        .arg(env!("CARGO_BIN_EXE_racebank-load"))
        .args(load_args(&block.load, &server.url()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run racebank-load");
    if block.interrupt {
        wait_for_deposits(&server.url(), 20).await;
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT");
    }
    if let Some(killable) = killable {
        wait_for_deposits(&server.url(), 50).await;
        killable.kill().await;
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the run's thread")
        .expect("racebank-load's output");
    if let Some(other) = other {
        other.abort();
    }
    if let Server::Stoppable(server) = server {
        server.stop().await;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    (
        text.lines().map(str::to_string).collect(),
        output.status.code(),
    )
}

/// `ARGS` with the test's URL: `SUBCOMMAND --url URL ARGS..` for a subcommand (`burst`), else
/// `--url URL --no-progress ARGS`.
fn load_args(args: &[String], url: &str) -> Vec<String> {
    let url = ["--url".to_string(), url.to_string()];
    match args.first() {
        Some(sub) if !sub.starts_with('-') => [&args[..1], &url, &args[1..]].concat(),
        _ => [&url[..], &["--no-progress".to_string()], args].concat(),
    }
}

/// The server a block runs against: stopped after the run, or killed during it (its URL).
enum Server {
    Stoppable(TestServer),
    Killable(String),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Stoppable(server) => server.url.clone(),
            Server::Killable(url) => url.clone(),
        }
    }
}

/// Another client: deposits of 7 to `url`, one after the other, until aborted.
async fn deposits_of_seven(url: String) {
    let client = reqwest::Client::new();
    loop {
        let _ = client
            .post(format!("{url}/deposit"))
            .header("content-type", "application/json")
            .body(r#"{"amount":7}"#)
            .send()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_shape_checked_run_summary_of_the_docs_has_the_shape_of_a_real_run() {
    let blocks = blocks();
    assert!(
        blocks.len() >= 2,
        "the marked run summaries of load-generator.md"
    );
    let mut differences = Vec::new();
    for block in &blocks {
        let (actual, exit) = run(block).await;
        let status = (block.exit.is_some() && block.exit != exit).then(|| {
            format!(
                "the doc's exit status {:?} is not the run's {exit:?}",
                block.exit
            )
        });
        if let Some(difference) = compare(block, &actual).or(status) {
            differences.push(format!(
                "{}: {difference}\nthe run printed:\n{}\n",
                block.place,
                actual.join("\n")
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn a_summary_shape_blanks_numbers_skips_optional_lines_and_keeps_labels() {
    let block = Block {
        place: String::new(),
        interrupt: false,
        exit: None,
        another_client: false,
        killed: false,
        load: Vec::new(),
        server: Vec::new(),
        optional: vec!["Lost, gross".into()],
        label_only: vec!["Consistent".into()],
        lines: [
            "Verdict:",
            "  Lost amount:  9790 (vanished)",
            "  Lost, gross:  removed 5",
            "  Consistent:   NO",
        ]
        .map(String::from)
        .to_vec(),
    };
    let run = |lines: &[&str]| {
        compare(
            &block,
            &lines.iter().map(|l| (*l).to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        run(&[
            "Summary:",
            "Verdict:",
            "  Lost amount: -12 (vanished)",
            "  Consistent: yes"
        ]),
        None
    );
    assert_eq!(
        run(&[
            "Verdict:",
            "  Lost amount: 1 (vanished)",
            "  Lost, gross: removed 7",
            "  Consistent: NO"
        ]),
        None
    );
    assert!(run(&[
        "Verdict:",
        "  Lost amount: 1 (appeared)",
        "  Consistent: NO"
    ])
    .is_some());
    assert!(run(&[
        "Verdict:",
        "  Lost amount: 1 (vanished)",
        "  Overdraft: no",
        "  Consistent: NO"
    ])
    .is_some());
    assert!(run(&["Summary:"]).is_some());
}

/// load-generator.md's `--history` example (marked `<!-- shape checked: racebank-load's
/// --history ..-->`): the command run against a mutex server of the test's own, its URL twice
/// where the doc's says port 3000, into a temporary file; the file has as many lines as the doc
/// shows, each shaped like the doc's (the members and their order, numbers blanked).
#[tokio::test(flavor = "multi_thread")]
async fn the_history_example_of_the_docs_has_the_shape_of_a_real_history() {
    let blocks = crate::docs::marked_blocks("<!-- shape checked: racebank-load's --history");
    let [(place, _, lines)] = blocks.as_slice() else {
        panic!("one marked --history block in the docs: {blocks:?}");
    };
    let shown: Vec<&String> = lines.iter().filter(|l| !l.starts_with("$ ")).collect();
    let server = spawn_server("mutex", "1ms", 0).await;
    let file =
        std::env::temp_dir().join(format!("racebank-doc-history-{}.jsonl", std::process::id()));
    let path = file.to_string_lossy().into_owned();
    let slash = format!("{}/", server.url);
    let argv = [
        "-n",
        "6",
        "-c",
        "2",
        "--url",
        &server.url,
        "--url",
        &slash,
        "--history",
        &path,
    ];
    let output = crate::binary::racebank_load(&argv).await;
    server.stop().await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let history = std::fs::read_to_string(&file).expect("the history file");
    let _ = std::fs::remove_file(&file);
    let real: Vec<&str> = history.lines().collect();
    assert_eq!(real.len(), shown.len(), "{place}: one line per request");
    for (doc, line) in shown.iter().zip(&real) {
        assert_eq!(
            blanked(doc),
            blanked(line),
            "{place}: a history line's shape"
        );
    }
}
