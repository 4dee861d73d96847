//! The docs' curl transcripts, run against the real server: every block marked
//! `<!-- checked: curl against racebank ARGS -->` in README.md and docs/*.md is replayed and its
//! output compared with the block, so a change to `/stats` or to an answer fails here until the
//! docs follow.
//!
//! What a marked block may be:
//! - a ```text block of `$ curl ..` lines, each followed by its output;
//! - a ```sh block of curl lines, then a ```text block of their outputs (README's form, where the
//!   commands are meant to be pasted).
//!
//! The server is the built `racebank` with ARGS on a port of its own; `--account NAME` is made
//! unique per run so tests on a shared store do not meet. `on 3001,3002` before `racebank` starts
//! one server per port named, and each `localhost:PORT` of the commands goes to its server. curl is
//! emulated (`-s -i -X -H -d -o /dev/null -w '\n'`, the request headers curl sends), over a plain
//! socket, so the answers' headers are shown as the server wrote them; `| jq -c 'FILTER'` after a
//! curl is computed here (paths, `keys`, `{a, b}`) and compared as a JSON value. Lines that end in
//! `&` run at the same time as the next; their outputs are compared in any order. A `[..]` in an
//! output line stands for anything (a date, a fencing token).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::process::{start, Process};

/// One marked transcript: where it is, the server, the commands and the outputs it shows.
#[derive(Debug)]
struct Transcript {
    place: String,
    ports: Vec<u16>,
    server_args: Vec<String>,
    /// Groups of commands run at once, each with the output lines the doc shows for it.
    steps: Vec<(Vec<String>, Vec<String>)>,
}

const MARKER: &str = "<!-- checked: curl against ";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every chapter.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

/// The fenced block that starts at or after `lines[from]`: its info string, its lines, and the
/// index after its closing fence.
fn block(lines: &[&str], from: usize) -> (String, Vec<String>, usize) {
    let open = (from..lines.len())
        .find(|&i| lines[i].starts_with("```"))
        .expect("a fenced block after the marker");
    let close = (open + 1..lines.len())
        .find(|&i| lines[i].starts_with("```"))
        .expect("the block's closing fence");
    let body = lines[open + 1..close]
        .iter()
        .map(|l| (*l).to_string())
        .collect();
    (lines[open][3..].trim().to_string(), body, close + 1)
}

/// Every marked transcript of `path`.
fn transcripts(path: &Path) -> Vec<Transcript> {
    let text = std::fs::read_to_string(path).expect("read a doc");
    let lines: Vec<&str> = text.lines().collect();
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    let mut found = Vec::new();
    for (number, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix(MARKER) else {
            continue;
        };
        let what = rest.trim_end_matches("-->").trim();
        let (ports, server) = match what.strip_prefix("on ") {
            Some(rest) => {
                let (ports, server) = rest.split_once(": ").expect("`on PORTS: racebank ..`");
                let ports = ports
                    .split(',')
                    .map(|p| p.trim().parse().expect("a port"))
                    .collect();
                (ports, server)
            }
            None => (vec![3000], what),
        };
        let server_args: Vec<String> = words(server).into_iter().skip(1).collect();
        let (info, body, after) = block(&lines, number + 1);
        let steps = if info == "sh" {
            let (_, outputs, _) = block(&lines, after);
            split_outputs(&groups(&body), &outputs)
        } else {
            prompted(&body)
        };
        found.push(Transcript {
            place: format!("{name}:{}", number + 1),
            ports,
            server_args,
            steps,
        });
    }
    found
}

/// Commands grouped: a line ending in `&` joins the next one.
fn groups(commands: &[String]) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    let mut group = Vec::new();
    for command in commands.iter().filter(|c| !c.trim().is_empty()) {
        let together = command.trim_end().ends_with('&');
        group.push(command.clone());
        if !together {
            groups.push(std::mem::take(&mut group));
        }
    }
    groups
}

/// README's form: the outputs of all the groups in one block, each group's lines as many as its
/// commands print (one line each with `-w '\n'`, none with `-o /dev/null`).
fn split_outputs(groups: &[Vec<String>], outputs: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut steps = Vec::new();
    let mut at = 0;
    for group in groups {
        let count = group.iter().filter(|c| !c.contains("/dev/null")).count();
        let end = (at + count).min(outputs.len());
        steps.push((group.clone(), outputs[at..end].to_vec()));
        at = end;
    }
    if at < outputs.len() {
        steps.push((Vec::new(), outputs[at..].to_vec()));
    }
    steps
}

/// The `$ ` form: each group of commands, then the lines up to the next prompt.
fn prompted(body: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut steps: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for line in body {
        if let Some(command) = line.strip_prefix("$ ") {
            pending.push(command.to_string());
            if !command.trim_end().ends_with('&') {
                steps.push((std::mem::take(&mut pending), Vec::new()));
            }
        } else if let Some(step) = steps.last_mut() {
            step.1.push(line.clone());
        }
    }
    steps
}

/// A shell line cut into words: single quotes keep everything, double quotes keep all but `\"`
/// and `\\`; a trailing `&` or `; wait` is left out.
fn words(line: &str) -> Vec<String> {
    let line = line.trim_end();
    let line = line.strip_suffix("; wait").unwrap_or(line);
    let line = line.strip_suffix('&').unwrap_or(line);
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// What curl prints for `command`, sent to the servers by port.
fn curl(command: &str, servers: &HashMap<u16, String>) -> String {
    if let Some((fetch, filter)) = command.split_once(" | jq -c ") {
        let answer: serde_json::Value =
            serde_json::from_str(&curl(fetch, servers)).expect("a JSON answer for jq");
        let filter = words(filter).concat();
        return format!("{}\n", jq(&filter, &answer));
    }
    let args = words(command);
    assert_eq!(args.first().map(String::as_str), Some("curl"), "{command}");
    let (mut method, mut headers, mut data) = (None, Vec::<String>::new(), None::<String>);
    let (mut include, mut discard, mut after) = (false, false, String::new());
    let mut url = None;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "-s" => {}
            "-i" | "-si" => include = true,
            "-X" => method = rest.next().cloned(),
            "-H" => headers.push(rest.next().expect("-H's value").clone()),
            "-d" => data = rest.next().cloned(),
            "-o" => discard = rest.next().map(String::as_str) == Some("/dev/null"),
            "-w" => after = rest.next().expect("-w's value").replace("\\n", "\n"),
            other if !other.starts_with('-') => url = Some(other.to_string()),
            other => panic!("curl option {other} is not emulated: {command}"),
        }
    }
    let url = url.expect("a URL");
    let url = url.trim_start_matches("http://");
    let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
    let port: u16 = authority
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("a port");
    let address = servers
        .get(&port)
        .unwrap_or_else(|| panic!("no server for port {port}"));
    let method = method.unwrap_or_else(|| if data.is_some() { "POST" } else { "GET" }.into());
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: curl/8\r\nAccept: */*\r\n"
    );
    for header in &headers {
        let _ = write!(request, "{header}\r\n");
    }
    if let Some(data) = &data {
        if !headers
            .iter()
            .any(|h| h.to_lowercase().starts_with("content-type"))
        {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        let _ = write!(request, "Content-Length: {}\r\n", data.len());
    }
    request.push_str("\r\n");
    request.push_str(data.as_deref().unwrap_or(""));
    let mut stream = TcpStream::connect(address).expect("connect to the server");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let (head, body) = read_answer(&mut stream);
    let (head, body) = (head.as_str(), body.as_str());
    if discard {
        return String::new();
    }
    let mut out = String::new();
    if include {
        out.push_str(&head.replace("\r\n", "\n"));
        out.push_str("\n\n");
    }
    out.push_str(body);
    out.push_str(&after);
    out
}

/// What `jq -c FILTER` prints for `value`, for the filters the docs use: stages joined by `|`,
/// each a path (`.name`, `["name"]`, `[N]`), `keys` or an object of fields (`{a, b}`).
fn jq(filter: &str, value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let mut value = value.clone();
    for stage in filter.split('|').map(str::trim) {
        value = if stage == "keys" {
            let object = value.as_object().expect("keys of an object");
            Value::from(object.keys().cloned().collect::<Vec<_>>())
        } else if let Some(fields) = stage.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let picked = fields
                .split(',')
                .map(str::trim)
                .map(|field| (field.to_string(), value[field].clone()));
            Value::Object(picked.collect())
        } else {
            jq_path(stage, &value)
        };
    }
    value
}

/// A jq path (`.paths["/deposit"].post.parameters[0]`) applied to `value`.
fn jq_path(path: &str, value: &serde_json::Value) -> serde_json::Value {
    let mut value = value;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[\"") {
            let end = after.find("\"]").expect("a closing `\"]`");
            value = &value[&after[..end]];
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').expect("a closing `]`");
            let index: usize = after[..end].parse().expect("an index");
            value = &value[index];
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                value = &value[&after[..end]];
            }
            rest = &after[end..];
        } else {
            panic!("jq path {path} is not emulated");
        }
    }
    value.clone()
}

#[test]
fn the_emulated_jq_reads_paths_keys_and_picked_fields() {
    let value = serde_json::json!({"paths": {"/b": {"post": {"parameters": [{"name": "k", "in": "header", "x": 1}]}}, "/a": {}}});
    assert_eq!(jq(".paths | keys", &value), serde_json::json!(["/a", "/b"]));
    assert_eq!(
        jq(".paths[\"/b\"].post.parameters[0] | {name, in}", &value),
        serde_json::json!({"name": "k", "in": "header"})
    );
}

/// One answer off a keep-alive connection, as curl reads it (no `Connection: close` asked for,
/// so the headers are the ones curl would show): the head, and a body of `content-length` bytes.
fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .expect("read the answer's head");
        bytes.push(byte[0]);
    }
    let head = String::from_utf8(bytes).expect("a UTF-8 head");
    let length: usize = (head.lines())
        .find_map(|line| {
            line.to_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse())
        })
        .expect("answers carry content-length")
        .expect("a length");
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .expect("read the answer's body");
    let head = head.trim_end_matches("\r\n").to_string();
    (head, String::from_utf8(body).expect("a UTF-8 body"))
}

/// Whether `actual` is `expected`, where each `[..]` of `expected` stands for anything.
fn matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
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

/// The doc's lines and the real ones, in order or (for commands run at once) in any order.
fn compare(
    place: &str,
    commands: &[String],
    expected: &[String],
    actual: &[String],
) -> Option<String> {
    let mut actual = actual.to_vec();
    let mut expected = expected.to_vec();
    if commands.len() == 1 && commands[0].contains(" | jq -c ") {
        // jq keeps an object's members in the order it built them; compare the values.
        expected = (expected.iter())
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .map_or(line.clone(), |v| v.to_string())
            })
            .collect();
    }
    if commands.len() > 1 {
        // Run at once: the order of the answers is the scheduler's.
        actual.sort();
        expected.sort_by_key(|line| actual.iter().position(|a| matches(line, a)));
    }
    let same =
        actual.len() == expected.len() && expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
    (!same).then(|| {
        format!(
            "{place}: the doc's output is not the server's for\n  {}\ndoc:\n{}\nserver:\n{}\n",
            commands.join("\n  "),
            expected.join("\n"),
            actual.join("\n")
        )
    })
}

/// Starts the transcript's servers, runs its commands, compares every output: what differs.
fn replay(transcript: &Transcript) -> Vec<String> {
    let mut args = transcript.server_args.clone();
    let unique = format!(
        "docs-{}-{}",
        std::process::id(),
        transcript.place.replace([':', '/', '.'], "-")
    );
    match args.iter().position(|a| a == "--account") {
        Some(at) => args[at + 1] = format!("{}-{unique}", args[at + 1]),
        None if args.iter().any(|a| a == "--store") => {
            args.extend(["--account".to_string(), unique]);
        }
        None => {}
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let setup = format!("export DATABASE_URL={}", crate::postgres::database_url());
    let mut processes: Vec<Process> = Vec::new();
    let mut servers = HashMap::new();
    for &port in &transcript.ports {
        let (process, _log) = start(&setup, &args);
        servers.insert(port, process.address.clone());
        processes.push(process);
    }
    let mut differences = Vec::new();
    for (commands, expected) in &transcript.steps {
        let outputs: Vec<String> = std::thread::scope(|scope| {
            let running: Vec<_> = (commands.iter())
                .map(|command| scope.spawn(|| curl(command, &servers)))
                .collect();
            running
                .into_iter()
                .map(|r| r.join().expect("a curl"))
                .collect()
        });
        let actual: Vec<String> = outputs.concat().lines().map(str::to_string).collect();
        differences.extend(compare(&transcript.place, commands, expected, &actual));
    }
    drop(processes);
    differences
}

/// Replays every transcript and fails with every difference at once.
fn replay_all(transcripts: &[Transcript]) {
    let differences: Vec<String> = transcripts.iter().flat_map(replay).collect();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// The transcripts whose server runs on `store` (`memory` when no `--store` is given).
fn on_store(store: &str) -> Vec<Transcript> {
    let all: Vec<Transcript> = documents()
        .iter()
        .flat_map(|path| transcripts(path))
        .collect();
    assert!(!all.is_empty(), "no marked transcript found");
    all.into_iter()
        .filter(|t| {
            let named = t.server_args.iter().position(|a| a == "--store");
            named.map_or("memory", |at| t.server_args[at + 1].as_str()) == store
        })
        .collect()
}

#[test]
fn every_curl_transcript_of_the_docs_on_the_memory_store_prints_what_the_docs_show() {
    let transcripts = on_store("memory");
    assert!(
        transcripts.iter().any(|t| t.place.starts_with("README.md")),
        "{transcripts:?}"
    );
    replay_all(&transcripts);
}

#[tokio::test]
async fn every_curl_transcript_of_the_docs_on_postgres_prints_what_the_docs_show() {
    crate::postgres::require_postgres().await;
    let transcripts = on_store("postgres");
    tokio::task::spawn_blocking(move || replay_all(&transcripts))
        .await
        .expect("the replay");
}

#[test]
fn every_curl_transcript_of_the_docs_on_redis_prints_what_the_docs_show() {
    replay_all(&on_store("redis"));
}

#[test]
fn a_doc_line_with_an_elision_matches_any_text_in_its_place() {
    assert!(matches("date: [..]", "date: Wed, 25 Nov 2026 12:35:49 GMT"));
    assert!(matches(
        "token [..] is older than [..], which",
        "token 17 is older than 18, which"
    ));
    assert!(!matches("date: [..]", "day: Wed"));
    assert!(!matches("{\"balance\":5}", "{\"balance\":10}"));
}

/// What `racebank ARGS` prints, stdout then stderr, with no `RACEBANK_*`, `DATABASE_URL` or
/// `REDIS_URL` in its environment (clap shows their values in the help).
fn racebank(args: &[String]) -> Vec<String> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_racebank"));
    command.args(args).stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("RACEBANK_") || name == "DATABASE_URL" || name == "REDIS_URL" {
            command.env_remove(name);
        }
    }
    let output = command.output().expect("run racebank");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.lines().map(str::to_string).collect()
}

/// Blocks marked `<!-- checked: racebank -->`: each `$ racebank ARGS` line is run and what it
/// prints must be the lines up to the next `$ ` (a `--help` text, a usage error).
#[test]
fn every_checked_racebank_transcript_of_the_docs_prints_what_the_docs_show() {
    let mut checked = 0;
    let mut differences = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).expect("read a doc");
        let lines: Vec<&str> = text.lines().collect();
        for (number, line) in lines.iter().enumerate() {
            if *line != "<!-- checked: racebank -->" {
                continue;
            }
            let (_, body, _) = block(&lines, number + 1);
            for (commands, expected) in prompted(&body) {
                let command = commands.concat();
                let args = words(&command);
                assert_eq!(
                    args.first().map(String::as_str),
                    Some("racebank"),
                    "{command}"
                );
                let actual = racebank(&args[1..]);
                let same = expected.len() == actual.len()
                    && expected.iter().zip(&actual).all(|(e, a)| matches(e, a));
                if !same {
                    differences.push(format!(
                        "{}:{}: `{command}` prints\n{}\nbut the doc shows\n{}\n",
                        path.display(),
                        number + 1,
                        actual.join("\n"),
                        expected.join("\n")
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no checked racebank block in the docs");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// What `racebank -h` says of each long flag but `--help` and `--version`: its name, its
/// environment variable and its default, if any.
fn flags_of_the_help() -> Vec<(String, Option<String>, Option<String>)> {
    let help = racebank(&["-h".to_string()]);
    let mut flags = Vec::new();
    for (at, line) in help.iter().enumerate() {
        // A flag's line starts with it (`      --addr <ADDR>`, `  -h, --help`); its text follows.
        if !line.trim_start().starts_with('-') {
            continue;
        }
        let Some(name) = (line.split_whitespace()).find(|word| word.starts_with("--")) else {
            continue;
        };
        if name == "--help" || name == "--version" {
            continue;
        }
        // The flag's text runs to the next line that names a flag.
        let text: String = (help[at + 1..].iter())
            .take_while(|line| !line.trim_start().starts_with('-'))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let bracketed = |label: &str| {
            let start = text.find(label)? + label.len();
            let end = text[start..].find(']')? + start;
            Some(text[start..end].to_string())
        };
        let env = bracketed("[env: ").map(|env| env.trim_end_matches('=').to_string());
        flags.push((name.to_string(), env, bracketed("[default: ")));
    }
    flags
}

/// server.md's flags table, as rows of cells.
fn flags_table() -> Vec<Vec<String>> {
    const HEADER: &str = "| flag | environment | default | meaning |";
    let text = std::fs::read_to_string(root().join("docs/server.md")).expect("read server.md");
    let lines: Vec<&str> = text.lines().collect();
    let at = (lines.iter().position(|line| *line == HEADER))
        .unwrap_or_else(|| panic!("server.md has no `{HEADER}` table"));
    (lines[at + 2..].iter())
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            (line.trim_matches('|').split('|'))
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

/// The first `code` of a table cell, if it has one (`` `RACEBANK_ALLOW_HOSTS` (comma-separated) ``).
fn first_code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let end = cell[start..].find('`')? + start;
    Some(&cell[start..end])
}

/// server.md's flags table summarises `racebank -h`: every long flag the help lists is a row, with
/// the help's environment variable and, where the help shows one, its default (a row whose flag has
/// none shows no `code` default: `none`, `off`); and no row names a flag the help lacks.
#[test]
fn the_flags_table_of_the_server_chapter_names_every_flag_of_the_help_as_the_help_does() {
    let flags = flags_of_the_help();
    assert!(
        flags.len() > 10,
        "too few flags read from `racebank -h`: {flags:?}"
    );
    let table = flags_table();
    let mut differences = Vec::new();
    for (name, env, default) in &flags {
        let Some(row) = (table.iter()).find(|row| first_code(&row[0]) == Some(name.as_str()))
        else {
            differences.push(format!("`{name}` has no row"));
            continue;
        };
        let table_env = row.get(1).and_then(|cell| first_code(cell));
        if table_env != env.as_deref() {
            differences.push(format!(
                "`{name}`: environment {table_env:?} in the table, {env:?} in the help"
            ));
        }
        let table_default = row.get(2).and_then(|cell| first_code(cell));
        if table_default != default.as_deref() {
            differences.push(format!(
                "`{name}`: default {table_default:?} in the table, {default:?} in the help"
            ));
        }
    }
    for row in &table {
        let name = first_code(&row[0]).unwrap_or(&row[0]);
        if !flags.iter().any(|(flag, _, _)| flag == name) {
            differences.push(format!("`{name}` has a row but is not in the help"));
        }
    }
    assert!(
        differences.is_empty(),
        "docs/server.md's flags table and `racebank -h` differ:\n{}",
        differences.join("\n")
    );
}

/// A `/metrics` line's shape: a sample's value blanked (`#`), comments and labels as they are.
fn metric_shape(line: &str) -> String {
    if line.starts_with('#') {
        return line.to_string();
    }
    match line.rsplit_once(' ') {
        Some((name, _)) => format!("{name} #"),
        None => line.to_string(),
    }
}

/// The block marked `<!-- shape checked: curl against racebank --mode unguarded .. /metrics -->`
/// (trimmed: some histogram buckets left out) against the server's `/metrics` after a deposit,
/// one without a content type, an applied and a refused withdrawal, `/balance` and `/stats`: each
/// of its lines, value blanked, is one of the server's in the same order, and every `# HELP` and
/// `# TYPE` line of the server's is in the doc.
#[test]
fn the_metrics_block_of_the_api_chapter_has_the_shape_of_the_servers_metrics() {
    let text = std::fs::read_to_string(root().join("docs/api.md")).expect("read api.md");
    let lines: Vec<&str> = text.lines().collect();
    let at = (lines.iter())
        .position(|l| l.starts_with("<!-- shape checked: curl against racebank --mode unguarded"))
        .expect("the marked /metrics block in api.md");
    let (_, body, _) = block(&lines, at + 1);
    let (command, shown) = body.split_first().expect("a command and its output");
    let command = command.strip_prefix("$ ").expect("a `$ curl` line");
    let (process, _log) = start("", &["--mode", "unguarded"]);
    let servers = HashMap::from([(3000, process.address.clone())]);
    let json = "-H 'content-type: application/json'";
    for request in [
        format!("curl -s -X POST localhost:3000/deposit {json} -d '{{\"amount\": 100}}'"),
        "curl -s -X POST localhost:3000/deposit -d '{\"amount\": 5}'".to_string(),
        format!("curl -s -X POST localhost:3000/withdraw {json} -d '{{\"amount\": 20}}'"),
        format!("curl -s -X POST localhost:3000/withdraw {json} -d '{{\"amount\": 1000}}'"),
        "curl -s localhost:3000/balance".to_string(),
        "curl -s localhost:3000/stats".to_string(),
    ] {
        curl(&request, &servers);
    }
    let actual: Vec<String> = (curl(command, &servers).lines())
        .map(metric_shape)
        .collect();
    let mut rest = actual.iter();
    let missing: Vec<String> = (shown.iter().map(|l| metric_shape(l)))
        .filter(|line| !rest.any(|a| a == line))
        .collect();
    assert!(
        missing.is_empty(),
        "api.md's /metrics lines not in the server's, in order:\n{}\nserver:\n{}",
        missing.join("\n"),
        actual.join("\n")
    );
    let comments: Vec<&String> = (actual.iter())
        .filter(|a| a.starts_with("# ") && !shown.contains(a))
        .collect();
    assert!(comments.is_empty(), "not in api.md: {comments:?}");
}

#[test]
fn a_metric_line_keeps_its_name_and_labels_and_blanks_its_value() {
    assert_eq!(
        metric_shape("racebank_http_requests_total{route=\"deposit\",status=\"415\"} 1"),
        "racebank_http_requests_total{route=\"deposit\",status=\"415\"} #"
    );
    assert_ne!(
        metric_shape("racebank_retries_total 0"),
        metric_shape("racebank_lost_updates_total 0")
    );
    assert_eq!(metric_shape("# EOF"), "# EOF");
}

/// A log line's shape: without its leading timestamp, numbers blanked (`#`), runs of spaces one.
fn log_shape(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let skip = usize::from(
        words
            .first()
            .is_some_and(|w| w.contains('T') && w.ends_with('Z')),
    );
    let mut shape = String::new();
    let mut in_number = false;
    for c in words[skip..].join(" ").chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            shape.push('#');
        } else if !digit {
            shape.push(c);
        }
        in_number = digit;
    }
    shape
}

/// Blocks marked `<!-- shape checked: racebank log, racebank ARGS -->` hold one log line: the
/// test starts `racebank ARGS` on a port of its own (`--database-url` added for `--store
/// postgres`, the test's database) and waits up to 5 s for a line of that shape on its stderr.
#[test]
fn every_shape_checked_log_line_of_the_docs_is_one_the_server_logs() {
    const LOG_MARKER: &str = "<!-- shape checked: racebank log, ";
    let mut checked = 0;
    let mut differences = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).expect("read a doc");
        let lines: Vec<&str> = text.lines().collect();
        for (number, line) in lines.iter().enumerate() {
            let Some(args) = line.strip_prefix(LOG_MARKER) else {
                continue;
            };
            // A note in parentheses after the arguments is for the reader, or asks for a race.
            let args = args.trim_end_matches("-->");
            let (args, note) = args.split_once(" (").unwrap_or((args, ""));
            let race = note.contains("two deposits of 5 sent at once");
            let (rust_log, args) = match args.trim().strip_prefix("RUST_LOG=") {
                Some(rest) => rest
                    .split_once(' ')
                    .map(|(l, a)| (Some(l), a))
                    .expect("RUST_LOG=X racebank"),
                None => (None, args.trim()),
            };
            let mut args: Vec<String> = words(args).into_iter().skip(1).collect();
            if args.iter().any(|a| a == "postgres") {
                args.extend([
                    "--database-url".to_string(),
                    crate::postgres::database_url(),
                ]);
            }
            let (_, body, _) = block(&lines, number + 1);
            let [expected] = body.as_slice() else {
                panic!("{}:{}: one log line", path.display(), number + 1);
            };
            let logged = server_log(&args, rust_log, race, &log_shape(expected));
            if !logged.iter().any(|l| log_shape(l) == log_shape(expected)) {
                differences.push(format!(
                    "{}:{}: the doc's line\n{expected}\nis not among the server's\n{}\n",
                    path.display(),
                    number + 1,
                    logged.join("\n")
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "the marked log lines of the docs");
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// `racebank --addr 127.0.0.1:0 ARGS`'s log lines (with `RUST_LOG` as given), read until one has
/// `shape` or 5 s passed; with `race`, two deposits of 5 are sent at once when it listens.
fn server_log(args: &[String], rust_log: Option<&str>, race: bool, shape: &str) -> Vec<String> {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_racebank"));
    command.env_remove("RUST_LOG");
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let mut child = command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start racebank");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut logged = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        let found = log_shape(&line) == shape;
        if let Some(address) = (line.split_whitespace()).find_map(|f| f.strip_prefix("addr=")) {
            if race {
                let servers = HashMap::from([(3000, address.to_string())]);
                let deposit = "curl -s -X POST localhost:3000/deposit -H 'content-type: application/json' -d '{\"amount\": 5}'";
                std::thread::scope(|scope| {
                    for _ in 0..2 {
                        scope.spawn(|| curl(deposit, &servers));
                    }
                });
            }
        }
        logged.push(line);
        if found {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    logged
}

#[test]
fn a_log_shape_drops_the_timestamp_and_blanks_the_numbers() {
    assert_eq!(
        log_shape("2026-12-06T11:18:58.595445Z  INFO racebank::http::server: listening addr=127.0.0.1:41325"),
        log_shape("INFO racebank::http::server: listening addr=127.0.0.1:3000")
    );
    assert_ne!(
        log_shape("INFO racebank::server: listening"),
        log_shape("INFO racebank::http::server: listening")
    );
}
