//! A raw TCP client, for what reqwest will not send: unfinished heads, stalled bodies, no `Host`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// How long a test waits for something the server should do promptly: a bound against hanging, far
/// above the short timeouts the tests configure, never a speed target.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// What came back on a raw connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A whole answer: the status line and headers, then the body.
    Answer { head: String, body: String },
    /// The server closed the connection without answering (EOF or reset).
    Closed,
    /// Nothing within the time allowed.
    Silent,
}

impl Outcome {
    /// The status code of an answer.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answer { head, .. } => head.split(' ').nth(1)?.parse().ok(),
            _ => None,
        }
    }

    /// The value of header `name` in an answer.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let Outcome::Answer { head, .. } = self else {
            return None;
        };
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// The body of an answer, parsed as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Outcome::Answer { body, .. } => serde_json::from_str(body).expect("a JSON body"),
            other => panic!("no answer to parse: {other:?}"),
        }
    }
}

/// A raw connection to the test server.
pub(crate) struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    /// Connects to `app`.
    pub(crate) async fn connect(app: &TestApp) -> Raw {
        let address = app.address.trim_start_matches("http://");
        let stream = TcpStream::connect(address).await.expect("connect");
        Raw {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends `bytes` as they are. A server that already closed may refuse them: that is ignored
    /// here, and shows in the next [`Raw::outcome`].
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Waits up to `within` for an answer or a close.
    pub(crate) async fn outcome(&mut self, within: Duration) -> Outcome {
        match tokio::time::timeout(within, self.read_answer()).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Silent,
        }
    }

    /// Reads one answer (head and `content-length` body), or sees the connection close.
    async fn read_answer(&mut self) -> Outcome {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_string();
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        key.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if self.buffer.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length])
                        .to_string();
                    self.buffer.drain(..end + 4 + length);
                    return Outcome::Answer { head, body };
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
