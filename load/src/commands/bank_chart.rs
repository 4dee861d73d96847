//! `racebank-load report bank-history.jsonl -o bank.png`: the total of every successful read of a
//! `bank` run over time, Jepsen's `bank.png`: flat at the bank's total when the bank is
//! consistent, each read with another total marked in red.
//!
//! Bounded: the file is read line by line and only reads are kept, as two numbers each.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::output::chart::{self, Chart, Series, XAxis, YAxis};

/// What a bank history line holds that the chart needs.
#[derive(Deserialize)]
struct Read {
    op: String,
    outcome: String,
    end_us: u64,
    total: Option<i128>,
}

/// The chart of one bank history, and what it shows.
#[derive(Debug, Clone)]
pub struct BankChart {
    /// Successful reads drawn.
    pub reads: u64,
    /// Those whose total was not the bank's.
    pub wrong: u64,
    /// The bank's total the reads were held to.
    pub total: i64,
}

impl BankChart {
    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} reads drawn, {} with a total other than {} (marked in red)",
            self.reads, self.wrong, self.total
        )
    }
}

/// Whether the first line of `path` is a line of `bank`'s `--history`.
pub fn is_bank_history(path: &Path) -> anyhow::Result<bool> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the history file {}", path.display()))?;
    let first = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .find(|line| !line.trim().is_empty())
        .unwrap_or_default();
    Ok(first.contains(r#""op":"read""#) || first.contains(r#""op":"transfer""#))
}

/// Reads a bank `--history` and builds the chart of its totals, held to `total`.
#[allow(
    clippy::cast_precision_loss,
    reason = "totals and microseconds far below 2^53"
)]
pub(crate) fn bank_chart(path: &Path, total: i64) -> anyhow::Result<(Chart, BankChart)> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the history file {}", path.display()))?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    let mut last_s = 0.0f64;
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let read: Read = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} line {}: not a --history line of racebank-load bank",
                path.display(),
                number + 1
            )
        })?;
        let seconds = read.end_us as f64 / 1e6;
        last_s = last_s.max(seconds);
        match (read.op.as_str(), read.outcome.as_str(), read.total) {
            ("read", "ok", Some(sum)) if sum == i128::from(total) => {
                right.push((seconds, sum as f64));
            }
            ("read", "ok", Some(sum)) => wrong.push((seconds, sum as f64)),
            _ => {}
        }
    }
    let about = BankChart {
        reads: (right.len() + wrong.len()) as u64,
        wrong: wrong.len() as u64,
        total,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let chart = Chart {
        title: "The bank's total, read by read".into(),
        subtitle: format!(
            "{name}: {} reads, {} with a total other than {total}",
            about.reads, about.wrong
        ),
        x: XAxis::Linear {
            label: "seconds since the run started (when the read's answer came)".into(),
            max: last_s,
        },
        y: YAxis::Count {
            label: "sum of every balance read".into(),
            // The chart's Count axis starts at 0, so a flat line at the total reads as flat.
        },
        series: vec![
            Series {
                name: format!("wrong-total reads ({})", about.wrong),
                points: wrong,
                dots: true,
            },
            Series {
                name: format!("reads summing to {total} ({})", about.reads - about.wrong),
                points: right,
                dots: true,
            },
            Series {
                name: format!("the bank's total, {total}"),
                points: vec![(0.0, total as f64), (last_s, total as f64)],
                dots: false,
            },
        ],
    };
    Ok((chart, about))
}

/// Writes the chart of `history` to `output`: PNG, SVG, or an HTML page holding the SVG, by the
/// output's extension.
pub fn write_bank_chart(history: &Path, output: &Path, total: i64) -> anyhow::Result<BankChart> {
    let (chart, about) = bank_chart(history, total)?;
    let extension = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match extension.as_str() {
        "png" => chart::to_png(&chart)?,
        "svg" => chart::to_svg(&chart)?.into_bytes(),
        _ => format!(
            "<!doctype html><meta charset=\"utf-8\"><title>{}</title>\n{}\n",
            chart.title,
            chart::to_svg(&chart)?
        )
        .into_bytes(),
    };
    std::fs::write(output, bytes).with_context(|| format!("cannot write {}", output.display()))?;
    Ok(about)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_history_is_drawn_with_its_wrong_totals_apart() {
        let path =
            std::env::temp_dir().join(format!("racebank-bank-chart-{}.jsonl", std::process::id()));
        let lines = [
            r#"{"index":0,"op":"transfer","from":0,"to":1,"amount":2,"connection":0,"start_us":1,"end_us":5,"status":200,"outcome":"ok","balances":null,"total":null}"#,
            r#"{"index":1,"op":"read","from":null,"to":null,"amount":null,"connection":1,"start_us":2,"end_us":9,"status":200,"outcome":"ok","balances":[98,2],"total":100}"#,
            r#"{"index":2,"op":"read","from":null,"to":null,"amount":null,"connection":1,"start_us":10,"end_us":20,"status":200,"outcome":"ok","balances":[98,4],"total":102}"#,
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        assert!(is_bank_history(&path).unwrap());
        let (chart, about) = bank_chart(&path, 100).unwrap();
        let png =
            std::env::temp_dir().join(format!("racebank-bank-chart-{}.png", std::process::id()));
        write_bank_chart(&path, &png, 100).unwrap();
        let written = std::fs::read(&png).unwrap();
        let _ = (std::fs::remove_file(&path), std::fs::remove_file(&png));
        assert_eq!((about.reads, about.wrong), (2, 1));
        assert_eq!(chart.series[0].points, vec![(20e-6, 102.0)]);
        assert!(written.starts_with(b"\x89PNG"));
    }
}
