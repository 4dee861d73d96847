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
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// Requests drawn when `--limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 5000;

/// One line of a `--history` file (see [`crate::engine::history`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Request {
    index: u64,
    op: String,
    amount: i64,
    #[serde(default)]
    replica: usize,
    connection: usize,
    start_us: u64,
    end_us: u64,
    status: Option<u16>,
    balance: Option<i64>,
    outcome: String,
    error: Option<String>,
}

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

/// How often one balance was acknowledged, and by which request first.
#[derive(Debug, Clone, Copy)]
struct Answers {
    count: u64,
    /// (end_us, index) of the first answer: the one the others repeat.
    first: (u64, u64),
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

/// Pixel sizes of the drawing.
const PLOT_WIDTH: f64 = 1160.0;
const GUTTER: f64 = 80.0;
const AXIS: f64 = 34.0;

struct Page<'a> {
    name: &'a str,
    drawn: &'a [Request],
    /// Every balance's answers, when the run allows marking collisions.
    answers: Option<&'a HashMap<i64, Answers>>,
    requests: u64,
    repeats: Option<u64>,
}

/// Where things go on the drawing: one lane per connection, time along x.
struct Geometry {
    lanes: usize,
    lane: f64,
    bar: f64,
    start: u64,
    span: f64,
    height: f64,
    width: f64,
}

impl Geometry {
    fn of(drawn: &[Request]) -> Self {
        let lanes = drawn.iter().map(|r| r.connection + 1).max().unwrap_or(0);
        let lane = (720.0 / lanes.max(1) as f64).clamp(5.0, 22.0);
        let start = drawn.iter().map(|r| r.start_us).min().unwrap_or(0);
        let end = drawn.iter().map(|r| r.end_us).max().unwrap_or(0);
        Geometry {
            lanes,
            lane,
            bar: (lane * 0.7).max(3.0),
            start,
            span: (end.saturating_sub(start)).max(1) as f64,
            height: AXIS + lanes as f64 * lane + 10.0,
            width: GUTTER + PLOT_WIDTH + 20.0,
        }
    }

    /// The x of a time, in microseconds since the run started.
    fn x(&self, us: u64) -> f64 {
        GUTTER + (us.saturating_sub(self.start)) as f64 / self.span * PLOT_WIDTH
    }
}

impl Page<'_> {
    /// The document, and how many bars it marks as colliding.
    fn render(&self) -> (String, usize) {
        let g = Geometry::of(self.drawn);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0}" width="{width}" height="{height:.0}" role="img" aria-label="request timeline">"#,
            width = g.width,
            height = g.height,
        );
        axis(&mut svg, &g);
        lanes(&mut svg, &g);
        let collisions = self.bars(&mut svg, &g);
        svg.push_str("</svg>");
        (self.document(&svg, collisions), collisions)
    }

    /// One bar per request, coloured by outcome, marked when it collided; returns how many did.
    fn bars(&self, svg: &mut String, g: &Geometry) -> usize {
        let mut collisions = 0;
        for request in self.drawn {
            let group = self.group_of(request);
            let mut class = format!("req {}", css_outcome(&request.outcome));
            if let Some(group) = group {
                collisions += 1;
                class.push_str(" collision");
                if group.first.1 != request.index {
                    class.push_str(" repeat");
                }
            }
            let x0 = g.x(request.start_us);
            let w = (g.x(request.end_us) - x0).max(1.5);
            let y = AXIS + request.connection as f64 * g.lane + (g.lane - g.bar) / 2.0;
            let _ = write!(
                svg,
                r#"<rect class="{class}" data-index="{}" x="{x0:.2}" y="{y:.1}" width="{w:.2}" height="{bar:.1}"><title>{}</title></rect>"#,
                request.index,
                tooltip(request, group),
                bar = g.bar,
            );
        }
        collisions
    }

    /// The page around the drawing: what it shows, the legend, the groups.
    fn document(&self, svg: &str, collisions: usize) -> String {
        let marked = match (self.repeats, self.answers) {
            (Some(repeats), Some(_)) => format!(
                "<b>{collisions}</b> drawn requests collided: their answers reported a balance another answer also reported \
                 (<b>{repeats}</b> answers repeated an earlier answer in the whole run, the run's <code>duplicates</code>). \
                 In a run of one kind of operation and one amount, every applied write yields a distinct balance, so \
                 each such pair read the same old balance and one write erased the other."
            ),
            _ => "This run mixes operations or amounts, so balances can legitimately repeat: no request is marked as colliding."
                .to_string(),
        };
        let bounded = if (self.drawn.len() as u64) < self.requests {
            format!(
                " Only the earliest {} of the {} requests are drawn (<code>--limit</code>).",
                self.drawn.len(),
                self.requests
            )
        } else {
            String::new()
        };
        let groups = self.groups_table();
        format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>racebank-load timeline: {name}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #212529; margin: 24px; background: #fff; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
p {{ max-width: 70em; margin: 6px 0; }}
.legend span {{ display: inline-block; margin-right: 16px; }}
.legend i {{ display: inline-block; width: 22px; height: 10px; margin-right: 6px; vertical-align: middle; border-radius: 2px; }}
.scroll {{ overflow-x: auto; margin-top: 12px; border: 1px solid #e1e4e8; border-radius: 4px; }}
svg {{ display: block; font-family: system-ui, sans-serif; }}
.grid {{ stroke: #e1e4e8; stroke-width: 1; }}
.tick {{ font-size: 11px; fill: #5a6068; text-anchor: middle; }}
.lane {{ fill: #f6f8fa; }}
.lane-name {{ font-size: 11px; fill: #5a6068; text-anchor: end; }}
.req {{ stroke: #fff; stroke-width: 0.75; }}
.req:hover {{ stroke: #000; stroke-width: 1.5; }}
.ok, .legend .ok {{ fill: #9db4cf; background: #9db4cf; }}
.refused, .legend .refused {{ fill: #f2b134; background: #f2b134; }}
.error, .legend .error {{ fill: #6c757d; background: #6c757d; }}
.indeterminate, .legend .indeterminate {{ fill: #9467bd; background: #9467bd; }}
.collision, .legend .collision {{ fill: #d62728; background: #d62728; }}
.repeat {{ stroke: #6b0000; stroke-width: 1; }}
.legend .repeat {{ box-shadow: inset 0 0 0 1.5px #6b0000; }}
table {{ border-collapse: collapse; margin-top: 8px; }}
td, th {{ padding: 2px 10px; border-bottom: 1px solid #e1e4e8; text-align: left; font-variant-numeric: tabular-nums; }}
</style>
</head>
<body>
<h1>Timeline of {drawn} requests</h1>
<p>From <code>{name}</code>: each bar is one request, from when it was sent to when its answer came (time since the run started), one lane per connection; hover a bar for its details.{bounded}</p>
<p>{marked}</p>
<p class="legend"><span><i class="ok"></i>acknowledged</span><span><i class="collision"></i>collided: same balance as another answer</span><span><i class="collision repeat"></i>outlined: repeated an earlier answer</span><span><i class="refused"></i>refused (409)</span><span><i class="error"></i>failed, not applied</span><span><i class="indeterminate"></i>indeterminate</span></p>
<div class="scroll">{svg}</div>
{groups}
</body>
</html>
"#,
            name = html_escape(self.name),
            drawn = self.drawn.len(),
        )
    }

    /// The answers of `request`'s balance, when it collided with another.
    fn group_of(&self, request: &Request) -> Option<Answers> {
        if request.outcome != "ok" {
            return None;
        }
        let answers = self.answers?.get(&request.balance?)?;
        (answers.count > 1).then_some(*answers)
    }

    /// The first groups of drawn colliding requests, as a table.
    fn groups_table(&self) -> String {
        const SHOWN: usize = 50;
        let mut groups: Vec<(i64, Vec<&Request>)> = Vec::new();
        for request in self.drawn.iter().filter(|r| self.group_of(r).is_some()) {
            let Some(balance) = request.balance else {
                continue;
            };
            match groups.iter_mut().find(|(b, _)| *b == balance) {
                Some((_, members)) => members.push(request),
                None => groups.push((balance, vec![request])),
            }
        }
        if groups.is_empty() {
            return String::new();
        }
        groups.sort_by_key(|(_, members)| members.iter().map(|r| r.start_us).min());
        let mut out = format!(
            "<h2 style=\"font-size:17px;margin-top:20px\">Collisions ({} balances answered more than once{})</h2>\n<table><tr><th>balance</th><th>requests: #index on connection, sent → answered (ms)</th></tr>\n",
            groups.len(),
            if groups.len() > SHOWN {
                format!(", the first {SHOWN} shown")
            } else {
                String::new()
            }
        );
        for (balance, members) in groups.iter().take(SHOWN) {
            let list: Vec<String> = members
                .iter()
                .map(|r| {
                    format!(
                        "#{} on conn {}, {} → {}",
                        r.index,
                        r.connection,
                        format_ms(r.start_us),
                        format_ms(r.end_us)
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "<tr><td>{balance}</td><td>{}</td></tr>",
                list.join("; ")
            );
        }
        out.push_str("</table>");
        out
    }
}

/// The time axis: about eight ticks at round numbers of milliseconds.
fn axis(svg: &mut String, g: &Geometry) {
    let step = nice_step_us(g.span / 8.0);
    let mut tick = 0u64;
    while (tick as f64) <= g.span {
        let tx = GUTTER + tick as f64 / g.span * PLOT_WIDTH;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{tx:.1}" y1="{AXIS}" x2="{tx:.1}" y2="{:.0}"/><text class="tick" x="{tx:.1}" y="{:.0}">{}</text>"#,
            g.height - 10.0,
            AXIS - 10.0,
            format_ms(tick)
        );
        tick += step;
    }
    let _ = write!(
        svg,
        r#"<text class="lane-name" x="{:.0}" y="{:.0}">time, ms</text>"#,
        GUTTER - 8.0,
        AXIS - 10.0
    );
}

/// The lanes, one per connection, every other one shaded, named where there is room.
fn lanes(svg: &mut String, g: &Geometry) {
    let lane = g.lane;
    for connection in 0..g.lanes {
        let y = AXIS + connection as f64 * lane;
        if connection % 2 == 1 {
            let _ = write!(
                svg,
                r#"<rect class="lane" x="{GUTTER}" y="{y:.1}" width="{PLOT_WIDTH}" height="{lane:.1}"/>"#
            );
        }
        if lane >= 11.0 || connection % 5 == 0 {
            let _ = write!(
                svg,
                r#"<text class="lane-name" x="{:.0}" y="{:.1}">conn {connection}</text>"#,
                GUTTER - 8.0,
                y + lane / 2.0 + 4.0
            );
        }
    }
}

/// The tooltip of one bar.
fn tooltip(r: &Request, group: Option<Answers>) -> String {
    let mut text = format!(
        "#{} {} {} on connection {} (replica {})\nstatus {}, balance {}, {}{}\nsent {} ms, answered {} ms ({} ms)",
        r.index,
        html_escape(&r.op),
        r.amount,
        r.connection,
        r.replica,
        r.status.map_or("none".to_string(), |s| s.to_string()),
        r.balance.map_or("none".to_string(), |b| b.to_string()),
        html_escape(&r.outcome),
        r.error
            .as_deref()
            .map(|e| format!(" ({})", html_escape(e)))
            .unwrap_or_default(),
        format_ms(r.start_us),
        format_ms(r.end_us),
        format_ms(r.end_us.saturating_sub(r.start_us)),
    );
    if let Some(group) = group {
        let _ = write!(
            text,
            "\nCOLLIDED: {} answers reported this balance",
            group.count
        );
    }
    text
}

fn css_outcome(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "ok",
        "refused" => "refused",
        "indeterminate" => "indeterminate",
        _ => "error",
    }
}

/// Microseconds as milliseconds, to the microsecond, without trailing zeros.
fn format_ms(us: u64) -> String {
    let text = format!("{}.{:03}", us / 1000, us % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1, 2 or 5 times a power of ten microseconds, at least `raw`.
fn nice_step_us(raw: f64) -> u64 {
    let mut power = 1u64;
    loop {
        for m in [1, 2, 5] {
            if (m * power) as f64 >= raw {
                return m * power;
            }
        }
        power = power.saturating_mul(10);
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn milliseconds_drop_trailing_zeros() {
        assert_eq!(format_ms(1500), "1.5");
        assert_eq!(format_ms(2000), "2");
        assert_eq!(format_ms(7), "0.007");
    }
}
