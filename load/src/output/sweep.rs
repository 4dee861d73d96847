//! `sweep`'s points: a line per point as the sweep goes, then CSV, JSON and charts (drawn by
//! [`chart`](super::chart)).
//!
//! One output layer for every kind of sweep: a point says where it sits (mode, work, concurrency),
//! its CSV cells and the figures its charts draw ([`SweepPoint`]); the CSV, the layout of the
//! charts' lines and the charts themselves are written here once. [`Point`] is a sweep of
//! deposits, holding its run's [`Summary`]; `sweep_bank`'s `BankPoint` is a sweep of the bank.

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

/// A finished sweep: its points (deposits' [`Point`]s, or the bank's), and the files written from
/// them.
#[derive(Debug, Clone)]
pub struct Swept<P = Point> {
    /// Every point, in the order run.
    pub points: Vec<P>,
    /// The files written.
    pub files: Vec<PathBuf>,
}

impl<P: Serialize> Render for Swept<P> {
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

/// What the output layer needs of a sweep's point, whatever the sweep sent.
pub(crate) trait SweepPoint: Serialize {
    /// The CSV's columns, comma separated (the fields of the point's JSON).
    const CSV_HEADER: &'static str;
    /// The server's mode (or the `--label` of a running server).
    fn mode(&self) -> &str;
    /// The server's work window (`-` for a running server).
    fn work(&self) -> &str;
    /// Requests in flight at once.
    fn concurrency(&self) -> u64;
    /// The CSV's cells, in the header's order (empty where a value is unknown).
    fn cells(&self) -> Vec<String>;
    /// The charts, one per figure.
    fn figures() -> Vec<Figure<Self>>
    where
        Self: Sized;
}

/// One chart of a sweep: a figure of each point, drawn against concurrency (or the work window).
pub(crate) struct Figure<P> {
    /// The chart's file is `NAME-SUFFIX.svg` and `.png`.
    pub(crate) suffix: &'static str,
    /// The title, to which `by concurrency` (or `by the work window`) is added.
    pub(crate) title: &'static str,
    /// What the figure measures.
    pub(crate) y: YAxis,
    /// The figure of one point.
    pub(crate) value: fn(&P) -> f64,
}

impl SweepPoint for Point {
    const CSV_HEADER: &'static str = CSV_HEADER;

    fn mode(&self) -> &str {
        &self.mode
    }

    fn work(&self) -> &str {
        &self.work
    }

    fn concurrency(&self) -> u64 {
        self.concurrency
    }

    fn cells(&self) -> Vec<String> {
        let s = &self.summary;
        vec![
            csv_cell(&self.mode),
            csv_cell(&self.work),
            self.concurrency.to_string(),
            s.requests.to_string(),
            s.ok.to_string(),
            s.errors.total().to_string(),
            format!("{:.6}", s.duration_s),
            format!("{:.1}", s.rps),
            format!("{:.3}", s.latency_ms.p50),
            format!("{:.3}", s.latency_ms.p99),
            s.acknowledged.deposit_sum.to_string(),
            self.lost_amount().to_string(),
            format!("{:.6}", self.lost_share_of_acked_deposits()),
            optional(s.duplicates),
            optional(self.server_lost_updates()),
            self.verdict().to_string(),
        ]
    }

    fn figures() -> Vec<Figure<Self>> {
        vec![
            Figure {
                suffix: "lost",
                title: "Share of acknowledged deposits lost,",
                y: YAxis::Share {
                    label: "lost amount / acknowledged deposits".into(),
                },
                value: Point::lost_share_of_acked_deposits,
            },
            Figure {
                suffix: "rps",
                title: "Throughput",
                y: YAxis::Count {
                    label: "requests per second".into(),
                },
                value: |p| p.summary.rps,
            },
        ]
    }
}

/// The points as CSV: their header, then one line per point.
pub(crate) fn to_csv<P: SweepPoint>(points: &[P]) -> String {
    let mut out = format!("{}\n", P::CSV_HEADER);
    for point in points {
        let _ = writeln!(out, "{}", point.cells().join(","));
    }
    out
}

/// A count that may be unknown, as a CSV cell: empty when it is.
pub(crate) fn optional(value: Option<u64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// A text cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub(crate) fn csv_cell(text: &str) -> String {
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
struct Layout<'a, P> {
    by_concurrency: bool,
    x: XAxis,
    works: Vec<String>,
    concurrencies: Vec<u64>,
    lines: Vec<(String, Vec<&'a P>)>,
}

impl<'a, P: SweepPoint> Layout<'a, P> {
    /// The x axis is the concurrency when more than one was swept (log2), else the work window.
    /// Each line is one mode (or one mode and work, when both vary).
    fn new(points: &'a [P]) -> Self {
        let concurrencies = distinct(points.iter().map(SweepPoint::concurrency));
        let works = distinct(points.iter().map(|p| p.work().to_string()));
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
        let mut lines: Vec<(String, Vec<&P>)> = Vec::new();
        for p in points {
            let name = match (by_concurrency, works.len() > 1, concurrencies.len() > 1) {
                (true, true, _) => format!("{}, work {}", p.mode(), p.work()),
                (false, _, true) => format!("{}, concurrency {}", p.mode(), p.concurrency()),
                _ => p.mode().to_string(),
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
    fn x_of(&self, p: &P) -> f64 {
        if self.by_concurrency {
            p.concurrency() as f64
        } else {
            self.works.iter().position(|w| w == p.work()).unwrap_or(0) as f64
        }
    }

    /// One series per line, of `value` at each point.
    fn series(&self, value: impl Fn(&P) -> f64) -> Vec<Series> {
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

/// The charts of a sweep, one per figure of its points, each with the suffix of its file name.
pub(crate) fn charts<P: SweepPoint>(points: &[P], about: &About) -> Vec<(&'static str, Chart)> {
    let layout = Layout::new(points);
    let subtitle = format!("{}{}; {}", about.load, layout.fixed(), about.place);
    let against = if layout.by_concurrency {
        "concurrency"
    } else {
        "the work window"
    };
    (P::figures().into_iter())
        .map(|figure| {
            let chart = Chart {
                title: format!("{} by {against}", figure.title),
                subtitle: subtitle.clone(),
                x: layout.x.clone(),
                y: figure.y,
                series: layout.series(figure.value),
            };
            (figure.suffix, chart)
        })
        .collect()
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
