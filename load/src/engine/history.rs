//! `--history FILE`: one JSON line per request, streamed to disk, so a run can be analysed later
//! and the requests that collided found.
//!
//! Memory stays bounded however long the run: each worker thread fills a small batch and hands it
//! to one writer thread through a bounded channel (a slow disk slows the run rather than filling
//! memory). Without `--history` the hot loop pays one branch per request.
//!
//! Each line: `index`, `op` (`deposit`/`withdraw`), `amount`, `replica` (index of the `--url`),
//! `connection` (the in-flight slot: one lane of a timeline, which sends one request at a time),
//! `start_us` and `end_us` (microseconds since the run started), `status` (or null), `balance`
//! (the balance answered, or null), `outcome` (`ok`, `refused`, `error`, `indeterminate`) and
//! `error` (null, or `timeout`, `connect`, `transport`, `status`, `body`, `interrupted`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use anyhow::Context;
use serde::Serialize;

use crate::engine::stats::{ErrorKind, Recorded};
use crate::plan::ops::{Kind, Op};

/// Lines a worker gathers before handing them to the writer.
const BATCH: usize = 512;
/// Batches waiting for the writer before workers wait too.
const QUEUED_BATCHES: usize = 64;

/// One request, as written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Entry {
    /// The operation's index in the sequence.
    pub index: u64,
    /// `deposit` or `withdraw`.
    pub op: &'static str,
    /// Its amount.
    pub amount: i64,
    /// Which `--url` it went to.
    pub replica: usize,
    /// The in-flight slot that sent it.
    pub connection: usize,
    /// When it was sent, in microseconds since the run started.
    pub start_us: u64,
    /// When its answer (or failure) came.
    pub end_us: u64,
    /// The HTTP status.
    pub status: Option<u16>,
    /// The balance answered.
    pub balance: Option<i64>,
    /// `ok`, `refused`, `error` or `indeterminate`.
    pub outcome: &'static str,
    /// How it failed.
    pub error: Option<&'static str>,
}

impl Entry {
    /// The line of `op` number `index`.
    pub(crate) fn new(
        index: u64,
        op: Op,
        (replica, connection): (usize, usize),
        (start_us, end_us): (u64, u64),
        recorded: Recorded,
    ) -> Self {
        Entry {
            index,
            op: match op.kind {
                Kind::Deposit => "deposit",
                Kind::Withdraw => "withdraw",
            },
            amount: op.amount,
            replica,
            connection,
            start_us,
            end_us,
            status: recorded.status,
            balance: recorded.balance,
            outcome: recorded.outcome_name(),
            error: recorded.error.map(ErrorKind::name),
        }
    }
}

/// The writer thread; [`History::finish`] waits for every line to be on disk. Its lines are
/// `run`'s [`Entry`] unless another command (`bank`) writes its own.
#[derive(Debug)]
pub(crate) struct History<E = Entry> {
    sender: SyncSender<Vec<E>>,
    writer: JoinHandle<std::io::Result<()>>,
}

impl<E: Serialize + Send + 'static> History<E> {
    /// Creates `path` and starts the writer.
    pub(crate) fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("cannot create the history file {}", path.display()))?;
        let (sender, receiver) = sync_channel(QUEUED_BATCHES);
        let writer = std::thread::Builder::new()
            .name("racebank-load-history".into())
            .spawn(move || write_all(BufWriter::new(file), receiver))
            .context("cannot start the history writer")?;
        Ok(History { sender, writer })
    }

    /// A batch for one worker thread.
    pub(crate) fn batch(&self) -> Batch<E> {
        Batch {
            entries: Vec::with_capacity(BATCH),
            sender: self.sender.clone(),
        }
    }

    /// Waits until every batch is written (drop every [`Batch`] first).
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        drop(self.sender);
        self.writer
            .join()
            .map_err(|_| anyhow::anyhow!("the history writer stopped unexpectedly"))?
            .context("cannot write the history file")
    }
}

/// One worker thread's lines not yet handed over; dropping it hands over the rest.
#[derive(Debug)]
pub(crate) struct Batch<E = Entry> {
    entries: Vec<E>,
    sender: SyncSender<Vec<E>>,
}

impl<E> Batch<E> {
    /// Adds a line, handing the batch over when full.
    #[inline]
    pub(crate) fn push(&mut self, entry: E) {
        self.entries.push(entry);
        if self.entries.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let full = std::mem::replace(&mut self.entries, Vec::with_capacity(BATCH));
        // If the writer failed, `finish` reports why; the run goes on.
        let _ = self.sender.send(full);
    }
}

impl<E> Drop for Batch<E> {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            self.flush();
        }
    }
}

fn write_all<E: Serialize>(
    mut out: BufWriter<File>,
    batches: Receiver<Vec<E>>,
) -> std::io::Result<()> {
    for batch in batches {
        for entry in batch {
            serde_json::to_writer(&mut out, &entry)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::{ErrorKind, Outcome};

    #[test]
    fn every_entry_becomes_one_json_line_in_the_file() {
        let path =
            std::env::temp_dir().join(format!("racebank-history-{}.jsonl", std::process::id()));
        let history = History::create(&path).unwrap();
        let mut batch = history.batch();
        let op = Op {
            kind: Kind::Withdraw,
            amount: 7,
        };
        for index in 0..(BATCH as u64 + 3) {
            let recorded = Recorded {
                outcome: Outcome::Indeterminate,
                status: None,
                balance: None,
                error: Some(ErrorKind::Timeout),
            };
            batch.push(Entry::new(index, op, (1, 2), (10, 20), recorded));
        }
        drop(batch);
        history.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), BATCH + 3);
        let last = &lines[BATCH + 2];
        assert_eq!(last["index"], BATCH as u64 + 2);
        assert_eq!(last["op"], "withdraw");
        assert_eq!(last["outcome"], "indeterminate");
        assert_eq!(last["error"], "timeout");
        assert_eq!(last["status"], serde_json::Value::Null);
        assert_eq!(
            (last["replica"].as_u64(), last["connection"].as_u64()),
            (Some(1), Some(2))
        );
    }
}
