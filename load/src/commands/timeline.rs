//! `racebank-load report history.jsonl -o timeline.html`: the requests of a run (its `--history`)
//! drawn as a timeline, on one self-contained HTML page (inline CSS and SVG, nothing fetched).
//!
//! Each request is a bar from when it was sent to when its answer came, one lane per connection
//! (the in-flight slot: a lane sends one request at a time), coloured by outcome, with a tooltip
//! (an SVG `<title>`) giving its index, operation, amount, status, balance and times.
//!
//! The colliding requests are highlighted: those whose acknowledged balance another acknowledgement
//! also reported. That is evidence only in a run of deposits only, or withdrawals only, of one
//! amount, where every applied write must produce a distinct balance: two answers of the same
//! balance read the same old balance and one erased the other. In any other run balances can
//! repeat legitimately, so nothing is highlighted, and the page says why. Which writes the server
//! counted as lost is not in the history (`/stats` only counts them), so the answers are the only
//! evidence drawn. "Repeats" (members of a group after its first answer) equal the run's
//! `duplicates`.
//!
//! Bounded: the file is read line by line; the earliest [`DEFAULT_LIMIT`] requests (by start) are
//! drawn and the page says so when there were more. The count of each balance is kept for the
//! whole run, so that a drawn request is marked even when its twin was not drawn.

use std::collections::{BinaryHeap, HashMap};
use std::io::BufRead;
use std::path::Path;

use crate::output::timeline::{Answers, Page, Request};
use anyhow::Context;

/// Requests drawn when `--limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 5000;

/// Orders requests by start, so a max-heap of them keeps the earliest.
#[derive(PartialEq, Eq)]
struct ByStart(Request);

impl Ord for ByStart {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.start_us, self.0.index).cmp(&(other.0.start_us, other.0.index))
    }
}

impl PartialOrd for ByStart {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The page, and what it shows.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The HTML document.
    pub html: String,
    /// Requests in the history.
    pub requests: u64,
    /// Requests drawn (the earliest, up to the limit).
    pub drawn: usize,
    /// Drawn requests marked as colliding (every member of a group of equal answers).
    pub collisions: usize,
    /// Answers in the whole history that repeated an earlier answer's balance (the run's
    /// `duplicates`), or `None` when the run's balances may legitimately repeat.
    pub repeats: Option<u64>,
}

impl Timeline {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let marked = match self.repeats {
            Some(repeats) => format!(
                "{} colliding requests marked ({repeats} answers repeated a balance)",
                self.collisions
            ),
            None => "balances may legitimately repeat in this run, none marked".to_string(),
        };
        format!(
            "{} of {} requests drawn; {marked}",
            self.drawn, self.requests
        )
    }
}

/// Reads a `--history` file and draws its earliest `limit` requests.
pub(crate) fn timeline(path: &Path, limit: usize) -> anyhow::Result<Timeline> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the history file {}", path.display()))?;
    let mut earliest: BinaryHeap<ByStart> = BinaryHeap::new();
    let mut answers: HashMap<i64, Answers> = HashMap::new();
    let mut requests = 0u64;
    // The run's one kind and amount, until a request differs (then `None`).
    let mut uniform: Option<Option<(String, i64)>> = None;
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {}: not a --history line of racebank-load",
                path.display(),
                number + 1
            )
        })?;
        requests += 1;
        let shape = (request.op.clone(), request.amount);
        uniform = match uniform {
            None => Some(Some(shape)),
            Some(Some(seen)) if seen == shape => Some(Some(seen)),
            Some(_) => Some(None),
        };
        if let (Some(balance), "ok") = (request.balance, request.outcome.as_str()) {
            let this = (request.end_us, request.index);
            answers
                .entry(balance)
                .and_modify(|a| {
                    a.count += 1;
                    a.first = a.first.min(this);
                })
                .or_insert(Answers {
                    count: 1,
                    first: this,
                });
        }
        earliest.push(ByStart(request));
        if earliest.len() > limit {
            earliest.pop();
        }
    }
    let checked = matches!(uniform, Some(Some(_)));
    let mut drawn: Vec<Request> = earliest
        .into_sorted_vec()
        .into_iter()
        .map(|r| r.0)
        .collect();
    drawn.sort_by_key(|r| (r.connection, r.start_us));
    let repeats = checked.then(|| {
        answers
            .values()
            .map(|a| a.count.saturating_sub(1))
            .sum::<u64>()
    });
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let page = Page {
        name: &name,
        drawn: &drawn,
        answers: checked.then_some(&answers),
        requests,
        repeats,
    };
    let (html, collisions) = page.render();
    Ok(Timeline {
        html,
        requests,
        drawn: drawn.len(),
        collisions,
        repeats,
    })
}

/// Writes the page of `history` to `output`.
pub fn write_timeline(history: &Path, output: &Path, limit: usize) -> anyhow::Result<Timeline> {
    let timeline = timeline(history, limit)?;
    std::fs::write(output, &timeline.html)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(timeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(index: u64, connection: usize, start: u64, end: u64, balance: i64) -> String {
        format!(
            r#"{{"index":{index},"op":"deposit","amount":5,"replica":0,"connection":{connection},"start_us":{start},"end_us":{end},"status":200,"balance":{balance},"outcome":"ok","error":null}}"#
        )
    }

    fn history(name: &str, lines: &[String]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "racebank-timeline-{name}-{}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    /// Bars whose class has `word`.
    fn marked(html: &str, word: &str) -> usize {
        html.split("<rect class=\"")
            .skip(1)
            .filter(|rest| {
                rest.split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .any(|c| c == word)
            })
            .count()
    }

    #[test]
    fn answers_of_the_same_balance_are_marked_and_the_later_one_as_a_repeat() {
        let path = history(
            "pair",
            &[
                line(0, 0, 0, 100, 5),
                line(1, 1, 10, 120, 5),
                line(2, 0, 100, 200, 10),
            ],
        );
        let timeline = timeline(&path, 10).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            (timeline.requests, timeline.drawn, timeline.collisions),
            (3, 3, 2)
        );
        assert_eq!(timeline.repeats, Some(1));
        assert_eq!(marked(&timeline.html, "collision"), 2);
        assert_eq!(marked(&timeline.html, "repeat"), 1);
        assert!(timeline.html.contains(r#"data-index="1""#));
    }

    #[test]
    fn only_the_earliest_requests_are_drawn_and_the_page_says_so() {
        let lines: Vec<String> = (0..20)
            .map(|i| {
                line(
                    i,
                    0,
                    1000 - i * 10,
                    1001 - i * 10,
                    i64::try_from(i).unwrap() * 5 + 5,
                )
            })
            .collect();
        let path = history("bounded", &lines);
        let timeline = timeline(&path, 4).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!((timeline.requests, timeline.drawn), (20, 4));
        for index in 16..20 {
            assert!(timeline.html.contains(&format!("data-index=\"{index}\"")));
        }
        assert!(timeline.html.contains("Only the earliest 4 of the 20"));
    }

    #[test]
    fn mixed_runs_mark_nothing() {
        let mut lines = vec![line(0, 0, 0, 100, 5), line(1, 1, 10, 120, 5)];
        lines.push(lines[1].replace("deposit", "withdraw"));
        let path = history("mixed", &lines);
        let timeline = timeline(&path, 10).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!((timeline.collisions, timeline.repeats), (0, None));
        assert_eq!(marked(&timeline.html, "collision"), 0);
    }

    #[test]
    fn a_line_that_is_not_history_is_refused_with_its_number() {
        let path = history("bad", &[line(0, 0, 0, 1, 5), "{\"x\":1}".to_string()]);
        let error = timeline(&path, 10).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(format!("{error:#}").contains("line 2"), "{error:#}");
    }
}
