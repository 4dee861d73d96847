//! The docs' run summaries of `racebank-load`, held to a real run's shape.
//!
//! A block marked `<!-- shape checked: racebank-load ARGS against SERVER | NOTES -->` is (an
//! excerpt of) what `racebank-load ARGS` prints against SERVER: `racebank SERVER_ARGS` (`--mode`,
//! `--work`, `--initial-balance`, `--chaos`; or, for a bank, `--accounts N` and `--lock-order`
//! beside `--mode` and `--work`: accounts `0` to `N-1` opening at 0, as `bank.rs`'s `spawn_bank`),
//! started in-process, or `other_api.rs's API`, the racy account of another shape that
//! `other_api.rs` serves. The server is the test's own, on a port of its own: its URL replaces the
//! command's `--url`, or the URL given after a subcommand (`bank http://..`), or is given with
//! `--url` when the command has none (where the doc's command uses port 3000). A
//! `$ racebank-load ARGS` line in the
//! block (with its `\` continuations) is the command run, exactly as written but for the URL: each
//! such line starts a run of its own against a fresh server, and when the marker names ARGS too,
//! they must be the line's. NOTES, split by `;`, name lines by their label: `optional: LABEL` for a
//! line that comes and goes between runs (`Lost, gross`), `label only: LABEL` for a line whose
//! words are the run's outcome. Every other line is compared with its numbers blanked (a sign,
//! `+` or `-`, with its number) and its runs of spaces made one; the doc's lines must be a run of
//! the real output's lines, in order (a `...` line stands for lines left out, at the start too). A `^C` line sends SIGINT after 20 deposits, `$ echo $?` checks
//! the exit status, and the notes `another client` and `killed` add deposits of 7 during the run
//! or kill the server after 50. Consecutive lines shaped alike (a burst's answers) count as one. A
//! first word that is not a flag is a subcommand (`burst`): the URL goes after it.
//!
//! A block marked `<!-- shape checked: racebank-load demo --scenario retries -->` is that demo's
//! table: its `$ racebank-load ..` line is run, and each line compared with its numbers blanked
//! (an expected balance, a range or one number as the run's errors decide, is one number).

use crate::helpers::{
    spawn_server, spawn_server_with_chaos, wait_for_deposits, KillableServer, TestServer,
};

/// One run of a marked block: its place, the load generator's arguments, the server, the notes,
/// the lines it shows.
struct Block {
    place: String,
    load: Vec<String>,
    server: ServerSpec,
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

/// The server a marker names after `against`.
#[derive(Clone, Debug)]
enum ServerSpec {
    /// `racebank ARGS`: the server in-process, with those flags.
    Racebank(Vec<String>),
    /// `other_api.rs's API`: the racy account of another shape, from a zero balance.
    OtherApi,
}

impl ServerSpec {
    fn parse(text: &str) -> Self {
        if let Some(args) = text.strip_prefix("racebank") {
            ServerSpec::Racebank(args.split_whitespace().map(str::to_string).collect())
        } else if text.starts_with("other_api.rs's API") {
            ServerSpec::OtherApi
        } else {
            panic!("`against racebank ARGS` or `against other_api.rs's API`, not `{text}`")
        }
    }
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

/// A block's runs: each `$ racebank-load ARGS` line, its `\` continuations joined, with its
/// arguments and the lines up to the next such line. A block without one is one run, `None`.
fn runs(lines: &[String]) -> Vec<(Option<Vec<String>>, Vec<String>)> {
    let mut found: Vec<(Option<Vec<String>>, Vec<String>)> = Vec::new();
    let mut rest = lines.iter();
    while let Some(line) = rest.next() {
        let Some(command) = line.strip_prefix("$ racebank-load") else {
            if found.is_empty() {
                found.push((None, Vec::new()));
            }
            found.last_mut().expect("a run").1.push(line.clone());
            continue;
        };
        let mut command = command.to_string();
        while let Some(head) = command.strip_suffix('\\') {
            let next = rest.next().expect("a line after a `\\`");
            command = format!("{head} {}", next.trim());
        }
        found.push((Some(crate::docs::words(&command)), vec![line.clone()]));
    }
    found
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
            .split_once(" against ")
            .expect("`.. against racebank ARGS`");
        let load: Vec<String> = load.split_whitespace().map(str::to_string).collect();
        let server = ServerSpec::parse(server);
        let notes: Vec<&str> = notes.split(';').map(str::trim).collect();
        let named = |prefix: &str| -> Vec<String> {
            (notes.iter())
                .filter_map(|note| note.strip_prefix(prefix))
                .map(|label| label.trim().to_string())
                .collect()
        };
        for (shown, lines) in runs(&lines) {
            if let Some(shown) = &shown {
                assert!(
                    load.is_empty() || *shown == load,
                    "{place}: the block runs `racebank-load {}`, the marker says `{}`",
                    shown.join(" "),
                    load.join(" ")
                );
            }
            let (lines, interrupt, exit) = output_lines(&lines);
            found.push(Block {
                another_client: notes.iter().any(|note| note.starts_with("another client")),
                killed: notes.iter().any(|note| note.starts_with("killed")),
                interrupt,
                exit,
                place: place.clone(),
                load: shown.unwrap_or_else(|| load.clone()),
                server: server.clone(),
                optional: named("optional:"),
                label_only: named("label only:"),
                lines,
            });
        }
    }
    found
}

/// A summary line's label: the text before its first `:` (`Lost, gross`), or the whole line.
fn label(line: &str) -> &str {
    line.trim().split(':').next().unwrap_or_default()
}

/// A line with its numbers blanked (`#`, a sign `+` or `-` included) and its runs of spaces made one.
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
    out.replace("-#", "#").replace("+#", "#")
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
    // A block may open with `...`: its first line is then anywhere in the run.
    let first = shown.iter().find(|l| l.as_str() != "...")?;
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

/// Starts the block's server: its URL, and the server to stop after the run (none when the test
/// kills it or it is the other API, which ends with the test's runtime).
async fn start(block: &Block) -> (String, Option<TestServer>, Option<KillableServer>) {
    let flags = match &block.server {
        ServerSpec::OtherApi => {
            let url = crate::other_api::spawn_other(crate::other_api::RACY, 0).await;
            return (url, None, None);
        }
        ServerSpec::Racebank(flags) => flags,
    };
    for flag in flags.iter().step_by(2) {
        assert!(
            [
                "--mode",
                "--work",
                "--initial-balance",
                "--chaos",
                "--accounts",
                "--lock-order"
            ]
            .contains(&flag.as_str()),
            "{}: the test starts racebank with --mode, --work, --initial-balance, --chaos, \
             --accounts and --lock-order, not {flag}",
            block.place
        );
    }
    let value = |name: &str, default: &str| -> String {
        (flags.iter())
            .position(|a| a == name)
            .map_or(default.to_string(), |at| flags[at + 1].clone())
    };
    if flags.iter().any(|a| a == "--accounts") {
        return start_bank(block, flags, &value).await;
    }
    let balance: i64 = value("--initial-balance", "0").parse().expect("a balance");
    let (mode, work) = (value("--mode", "unguarded"), value("--work", "1ms"));
    let chaos: racebank::Chaos = value("--chaos", "drop-after-apply=0")
        .parse()
        .expect("a --chaos");
    if block.killed {
        let killable = KillableServer::start(&mode, &work);
        return (killable.url.clone(), None, Some(killable));
    }
    let server = spawn_server_with_chaos(&mode, &work, balance, chaos).await;
    (server.url.clone(), Some(server), None)
}

/// Starts the block's bank server (`--accounts N`, with `--mode`, `--work` and `--lock-order`):
/// accounts `0` to `N-1`, through `bank.rs`'s `spawn_bank`, so the doc's run meets the bank the
/// bank tests meet.
async fn start_bank(
    block: &Block,
    flags: &[String],
    value: &dyn Fn(&str, &str) -> String,
) -> (String, Option<TestServer>, Option<KillableServer>) {
    let place = &block.place;
    assert!(
        !block.killed
            && !flags
                .iter()
                .any(|a| a == "--initial-balance" || a == "--chaos"),
        "{place}: a bank server (--accounts) takes --mode, --work and --lock-order only"
    );
    let accounts: usize = (value("--accounts", "8").parse())
        .unwrap_or_else(|_| panic!("{place}: --accounts is a count here, as `--accounts 8`"));
    let lock_order = match value("--lock-order", "id").as_str() {
        "request" => racebank::LockOrder::Request,
        "id" => racebank::LockOrder::Id,
        other => panic!("{place}: --lock-order request or id, not {other}"),
    };
    let (mode, work) = (value("--mode", "unguarded"), value("--work", "1ms"));
    let server = crate::bank::spawn_bank(&mode, &work, accounts, lock_order).await;
    (server.url.clone(), Some(server), None)
}

/// Runs the block's command against a server of its own: what it printed (stderr into stdout, as
/// a terminal shows them) and its exit status.
async fn run(block: &Block) -> (Vec<String>, Option<i32>) {
    let (url, server, killable) = start(block).await;
    let other = block
        .another_client
        .then(|| tokio::spawn(deposits_of_seven(url.clone())));
    if other.is_some() {
        wait_for_deposits(&url, 20).await;
    }
    let child = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" 2>&1"])
        .arg(env!("CARGO_BIN_EXE_racebank-load"))
        .args(load_args(&block.load, &url))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run racebank-load");
    if block.interrupt {
        wait_for_deposits(&url, 20).await;
        let sent = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -INT");
    }
    if let Some(killable) = killable {
        wait_for_deposits(&url, 50).await;
        killable.kill().await;
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the run's thread")
        .expect("racebank-load's output");
    if let Some(other) = other {
        other.abort();
    }
    if let Some(server) = server {
        server.stop().await;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    (
        text.lines().map(str::to_string).collect(),
        output.status.code(),
    )
}

/// `ARGS` with the test's URL: the value of each `--url` replaced by it, or the URL given after a
/// subcommand (`bank http://..`), or, when there is none, `--url URL` first (after the
/// subcommand, for one such as `burst`). Nothing else is added: the progress line needs a
/// terminal, and the run's stderr is a pipe.
fn load_args(args: &[String], url: &str) -> Vec<String> {
    let subcommand = args.first().is_some_and(|a| !a.starts_with('-'));
    if subcommand && args.get(1).is_some_and(|a| a.starts_with("http")) {
        let mut args = args.to_vec();
        args[1] = url.to_string();
        return args;
    }
    if args.iter().any(|a| a == "--url") {
        let mut args = args.to_vec();
        for at in 1..args.len() {
            if args[at - 1] == "--url" {
                args[at] = url.to_string();
            }
        }
        return args;
    }
    let url = ["--url".to_string(), url.to_string()];
    match args.first() {
        Some(sub) if !sub.starts_with('-') => [&args[..1], &url, &args[1..]].concat(),
        _ => [&url[..], args].concat(),
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
        server: ServerSpec::OtherApi,
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

/// A retries demo's line with its numbers blanked, an expected balance that is a range made one
/// number (`1955..=2500` blanks to `#=#`, the dots going with the number before them): whether
/// every deposit of a row got an answer in the end is the run's chance.
fn retries_shape(line: &str) -> String {
    blanked(line).replace("#=#", "#")
}

/// retries.md's `demo --scenario retries` table (marked `<!-- shape checked: racebank-load demo
/// --scenario retries -->`): the block's `$ racebank-load ..` command run as written, through the
/// binary; each line, with its numbers blanked, is the doc's, the verdicts' words included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retries_demo_of_the_docs_has_the_shape_of_a_real_one() {
    let blocks =
        crate::docs::marked_blocks("<!-- shape checked: racebank-load demo --scenario retries -->");
    let [(place, _, lines)] = blocks.as_slice() else {
        panic!("one marked retries demo in the docs: {blocks:?}");
    };
    let runs = runs(lines);
    let [(Some(args), shown)] = runs.as_slice() else {
        panic!("{place}: one `$ racebank-load ..` line, then its output");
    };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();

    let output = crate::binary::racebank_load(&argv).await;

    assert_eq!(output.status.code(), Some(0), "{place}: {output:?}");
    let real: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(retries_shape)
        .collect();
    let doc: Vec<String> = (shown.iter().skip(1))
        .filter(|line| !line.trim().is_empty())
        .map(|line| retries_shape(line))
        .collect();
    assert_eq!(
        doc, real,
        "{place}: the retries demo changed shape; paste a new run"
    );
}

#[test]
fn the_url_after_a_subcommand_or_after_url_is_the_test_servers() {
    let args = |line: &str| -> Vec<String> { line.split_whitespace().map(String::from).collect() };
    let cases = [
        ("bank http://127.0.0.1:3999 -n 20", "bank T -n 20"),
        ("bank -n 20", "bank --url T -n 20"),
        ("-n 20 --url http://127.0.0.1:3999", "-n 20 --url T"),
        ("-n 20", "--url T -n 20"),
    ];
    for (doc, run) in cases {
        assert_eq!(load_args(&args(doc), "T"), args(run), "{doc}");
    }
}
