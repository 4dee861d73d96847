//! `sweep`'s points, each holding its run's [`Summary`]: a line per point as the sweep goes, then
//! CSV, JSON and charts (drawn by [`chart`](super::chart)).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::check::verdict::Conclusion;
use crate::output::chart::{Chart, Series, XAxis, YAxis};
use crate::output::summary::Summary;
use crate::output::{json, json_object, percent, Render};

/// One point: one run, and what it showed.
///
/// Its JSON and CSV (the columns of [`CSV_HEADER`]): `mode` (or the `--label` of a running
/// server), `work` (`-` for a running server: unknown to the client), `concurrency`, then from the
/// run: `requests`, `ok`, `errors` (all kinds), `duration_s`, `rps`, `p50_ms`, `p99_ms`,
/// `acked_deposit_sum`, `lost_amount`, `lost_share_of_acked_deposits` (`max(lost_amount, 0) /
/// acked_deposit_sum`, 0 when nothing was acknowledged), `duplicates`, `server_lost_updates` (the
/// server's `/stats`, when it has one), `verdict` (`consistent`, `lost`, `inconclusive`).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The server's mode (or the `--label` of a running server).
    pub mode: String,
    /// The server's work window (`-` for a running server).
    pub work: String,
    /// Requests in flight at once.
    pub concurrency: u64,
    /// The run, which read its final balance (a point is only made from such a run).
    pub summary: Summary,
}

impl Point {
    /// Expected minus final balance, 0 inside the expected range.
    pub fn lost_amount(&self) -> i128 {
        self.summary.lost_amount.unwrap_or_default()
    }

    /// The share of the acknowledged deposits' money missing from the final balance.
    pub fn lost_share_of_acked_deposits(&self) -> f64 {
        let acked = self.summary.acknowledged.deposit_sum;
        if acked > 0 {
            self.lost_amount().max(0) as f64 / acked as f64
        } else {
            0.0
        }
    }

    /// Failed requests, of every kind.
    pub fn errors(&self) -> u64 {
        self.summary.errors.total()
    }

    /// The sum of the acknowledged deposits.
    pub fn acked_deposit_sum(&self) -> i128 {
        self.summary.acknowledged.deposit_sum
    }

    /// Lost updates counted by the server's `/stats`, when it has one.
    pub fn server_lost_updates(&self) -> Option<u64> {
        self.summary.server_stats.as_ref().map(|s| s.lost_updates)
    }

    /// `consistent`, `lost`, `inconclusive` or `unknown`.
    pub fn verdict(&self) -> &'static str {
        match self.summary.verdict {
            Conclusion::Consistent => "consistent",
            Conclusion::Lost => "lost",
            Conclusion::Inconclusive => "inconclusive",
            Conclusion::Unknown => "unknown",
            Conclusion::InconsistentAnswers => "inconsistent_answers",
            Conclusion::ProtocolError => "protocol_error",
        }
    }

    /// One line for the terminal, printed as the sweep goes.
    pub fn line(&self) -> String {
        let s = &self.summary;
        format!(
            "{:<12} work {:<6} c {:>4}: {:>6} requests, {:>8.0} req/s, p99 {:>8.2} ms, lost {:>6} of acknowledged deposits{}",
            self.mode,
            self.work,
            self.concurrency,
            s.requests,
            s.rps,
            s.latency_ms.p99,
            percent(self.lost_share_of_acked_deposits()),
            self.server_lost_updates()
                .map(|n| format!(" (server: {n} lost updates)"))
                .unwrap_or_default()
        )
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = &self.summary;
        json_object!(serializer, "Point" {
            "mode": self.mode,
            "work": self.work,
            "concurrency": self.concurrency,
            "requests": s.requests,
            "ok": s.ok,
            "errors": s.errors.total(),
            "duration_s": s.duration_s,
            "rps": s.rps,
            "p50_ms": s.latency_ms.p50,
            "p99_ms": s.latency_ms.p99,
            "acked_deposit_sum": s.acknowledged.deposit_sum,
            "lost_amount": self.lost_amount(),
            "lost_share_of_acked_deposits": self.lost_share_of_acked_deposits(),
            "duplicates": s.duplicates,
            "server_lost_updates": self.server_lost_updates(),
            "verdict": self.verdict(),
        })
    }
}

/// A finished sweep: its points, and the files written from them.
#[derive(Debug, Clone)]
pub struct Swept {
    /// Every point, in the order run.
    pub points: Vec<Point>,
    /// The files written.
    pub files: Vec<PathBuf>,
}

impl Render for Swept {
    /// The files written.
    fn to_text(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        format!("wrote {}", names.join(", "))
    }

    /// The points as a JSON array.
    fn to_json(&self) -> String {
        json(&self.points)
    }
}

/// The columns of the CSV, in order (the fields of [`Point`]'s JSON).
pub const CSV_HEADER: &str = "mode,work,concurrency,requests,ok,errors,duration_s,rps,p50_ms,p99_ms,acked_deposit_sum,lost_amount,lost_share_of_acked_deposits,duplicates,server_lost_updates,verdict";

/// The points as CSV: [`CSV_HEADER`], then one line per point (empty cells where a value is
/// unknown).
pub(crate) fn to_csv(points: &[Point]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    let optional = |value: Option<u64>| value.map_or(String::new(), |v| v.to_string());
    for p in points {
        let s = &p.summary;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.6},{:.1},{:.3},{:.3},{},{},{:.6},{},{},{}",
            csv_cell(&p.mode),
            csv_cell(&p.work),
            p.concurrency,
            s.requests,
            s.ok,
            s.errors.total(),
            s.duration_s,
            s.rps,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.acknowledged.deposit_sum,
            p.lost_amount(),
            p.lost_share_of_acked_deposits(),
            optional(s.duplicates),
            optional(p.server_lost_updates()),
            p.verdict(),
        );
    }
    out
}

/// A text cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// What every point of a sweep shares, for the charts' subtitle: the load of a point (`1000
/// deposits of 5 per point`) and where the points ran.
#[derive(Debug, Clone)]
pub(crate) struct About {
    /// The load of one point.
    pub(crate) load: String,
    /// The servers.
    pub(crate) place: String,
}

/// How the points are laid out: what is on the x axis, and which points make each line.
struct Layout<'a> {
    by_concurrency: bool,
    x: XAxis,
    works: Vec<String>,
    concurrencies: Vec<u64>,
    lines: Vec<(String, Vec<&'a Point>)>,
}

impl<'a> Layout<'a> {
    /// The x axis is the concurrency when more than one was swept (log2), else the work window.
    /// Each line is one mode (or one mode and work, when both vary).
    fn new(points: &'a [Point]) -> Self {
        let concurrencies = distinct(points.iter().map(|p| p.concurrency));
        let works = distinct(points.iter().map(|p| p.work.clone()));
        let by_concurrency = concurrencies.len() > 1 || works.len() <= 1;
        let x = if by_concurrency {
            XAxis::Concurrency(concurrencies.clone())
        } else {
            XAxis::Categories {
                label: "server work between reading and writing the balance".into(),
                names: works.clone(),
            }
        };
        // A line for each combination of what is not on the x axis.
        let mut lines: Vec<(String, Vec<&Point>)> = Vec::new();
        for p in points {
            let name = match (by_concurrency, works.len() > 1, concurrencies.len() > 1) {
                (true, true, _) => format!("{}, work {}", p.mode, p.work),
                (false, _, true) => format!("{}, concurrency {}", p.mode, p.concurrency),
                _ => p.mode.clone(),
            };
            match lines.iter_mut().find(|(n, _)| *n == name) {
                Some((_, members)) => members.push(p),
                None => lines.push((name, vec![p])),
            }
        }
        Layout {
            by_concurrency,
            x,
            works,
            concurrencies,
            lines,
        }
    }

    /// Where a point sits on the x axis.
    fn x_of(&self, p: &Point) -> f64 {
        if self.by_concurrency {
            p.concurrency as f64
        } else {
            self.works.iter().position(|w| *w == p.work).unwrap_or(0) as f64
        }
    }

    /// One series per line, of `value` at each point.
    fn series(&self, value: impl Fn(&Point) -> f64) -> Vec<Series> {
        (self.lines.iter())
            .map(|(name, members)| Series {
                name: name.clone(),
                points: members.iter().map(|p| (self.x_of(p), value(p))).collect(),
                dots: false,
            })
            .collect()
    }

    /// What the charts' points share besides `about`: the one work or concurrency not on the x
    /// axis.
    fn fixed(&self) -> String {
        match (
            self.by_concurrency,
            self.works.as_slice(),
            self.concurrencies.as_slice(),
        ) {
            (true, [work], _) if work != "-" => format!(", server work {work}"),
            (false, _, [c]) => format!(", concurrency {c}"),
            _ => String::new(),
        }
    }
}

/// The charts of a sweep, each with the suffix of its file name.
pub(crate) fn charts(points: &[Point], about: &About) -> Vec<(&'static str, Chart)> {
    let layout = Layout::new(points);
    let subtitle = format!("{}{}; {}", about.load, layout.fixed(), about.place);
    let against = if layout.by_concurrency {
        "concurrency"
    } else {
        "the work window"
    };
    vec![
        (
            "lost",
            Chart {
                title: format!("Share of acknowledged deposits lost, by {against}"),
                subtitle: subtitle.clone(),
                x: layout.x.clone(),
                y: YAxis::Share {
                    label: "lost amount / acknowledged deposits".into(),
                },
                series: layout.series(Point::lost_share_of_acked_deposits),
            },
        ),
        (
            "rps",
            Chart {
                title: format!("Throughput by {against}"),
                subtitle,
                x: layout.x.clone(),
                y: YAxis::Count {
                    label: "requests per second".into(),
                },
                series: layout.series(|p| p.summary.rps),
            },
        ),
    ]
}

/// The values in first-seen order, without repeats.
fn distinct<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_cell("mutex"), "mutex");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn distinct_keeps_the_first_of_each_value_in_order() {
        assert_eq!(distinct([4, 1, 4, 2, 1].into_iter()), vec![4, 1, 2]);
    }
}
