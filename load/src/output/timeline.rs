//! The page of `report`: a run's requests drawn as a timeline on one self-contained HTML page
//! (inline CSS and SVG), the colliding requests marked, with a table of the colliding groups.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Deserialize;

/// One line of a `--history` file (see [`crate::engine::history`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Request {
    pub(crate) index: u64,
    pub(crate) op: String,
    pub(crate) amount: i64,
    #[serde(default)]
    pub(crate) replica: usize,
    pub(crate) connection: usize,
    pub(crate) start_us: u64,
    pub(crate) end_us: u64,
    pub(crate) status: Option<u16>,
    pub(crate) balance: Option<i64>,
    pub(crate) outcome: String,
    pub(crate) error: Option<String>,
}

/// How often one balance was acknowledged, and by which request first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answers {
    pub(crate) count: u64,
    /// (end_us, index) of the first answer: the one the others repeat.
    pub(crate) first: (u64, u64),
}

/// Pixel sizes of the drawing.
const PLOT_WIDTH: f64 = 1160.0;
const GUTTER: f64 = 80.0;
const AXIS: f64 = 34.0;

/// The page of one history file: what it draws and what it knows of the whole run.
pub(crate) struct Page<'a> {
    pub(crate) name: &'a str,
    pub(crate) drawn: &'a [Request],
    /// Every balance's answers, when the run allows marking collisions.
    pub(crate) answers: Option<&'a HashMap<i64, Answers>>,
    pub(crate) requests: u64,
    pub(crate) repeats: Option<u64>,
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
    pub(crate) fn render(&self) -> (String, usize) {
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

    #[test]
    fn milliseconds_drop_trailing_zeros() {
        assert_eq!(format_ms(1500), "1.5");
        assert_eq!(format_ms(2000), "2");
        assert_eq!(format_ms(7), "0.007");
    }
}
