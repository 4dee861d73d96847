//! A server that answers too much, too slowly, or to a client whose stderr is gone: the load
//! generator stays bounded in memory and time, and never panics.

use racebank_load::Render as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::binary::BIN;
use crate::helpers::opts;

/// What the hand-written server answers to `GET /balance` and to `POST /deposit`.
#[derive(Clone, Copy)]
enum Answer {
    /// `{"balance":0}`.
    Small,
    /// A 200 whose `Content-Length` promises this many bytes of spaces, written until the client
    /// hangs up.
    Huge(u64),
    /// Nothing, ever.
    Silence,
}

/// The declared size of a huge body: far more than a client should ever read.
const HUGE: u64 = 256 * 1024 * 1024;

/// A server that answers `balance` and `deposit` as told, one request per connection, and
/// reports how many bytes of each huge body it managed to hand to the kernel before the client
/// hung up.
async fn hostile_server(
    balance: Answer,
    deposit: Answer,
) -> (String, mpsc::UnboundedReceiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (sent, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, balance, deposit, sent.clone()));
        }
    });
    (url, received)
}

async fn answer(
    mut stream: TcpStream,
    balance: Answer,
    deposit: Answer,
    sent: mpsc::UnboundedSender<u64>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let answer = if head.starts_with(b"GET ") {
        balance
    } else {
        deposit
    };
    match answer {
        Answer::Small => {
            let body = r#"{"balance":0}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Answer::Huge(length) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            let written = AtomicU64::new(0);
            while written.load(Ordering::Relaxed) < length {
                match stream.write(&chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        written.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            let _ = sent.send(written.load(Ordering::Relaxed));
        }
        Answer::Silence => {
            // Hold the connection open without a word until the client gives up.
            let _ = stream.read(&mut byte).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_body_is_cut_off_counted_as_a_body_error_and_its_connection_dropped() {
    let (url, mut sent) = hostile_server(Answer::Small, Answer::Huge(HUGE)).await;

    let report = racebank_load::run(opts(&url, &["-n", "2", "-c", "1"]))
        .await
        .expect("a report");

    // Acknowledged with a 200, but no balance could be read from the answer.
    assert_eq!(report.summary.ok, 2, "{}", report.to_text());
    assert_eq!(report.summary.errors.body, 2, "{:?}", report.summary.errors);
    // Each huge answer stopped when the client hung up: the kernel's buffers and the 64 KiB cap
    // took a few MiB at most (the limit here is generous), where reading on would take 256 MiB.
    for _ in 0..2 {
        let written = sent.recv().await.expect("the server reports each answer");
        assert!(
            written < 64 * 1024 * 1024,
            "the client read on: {written} bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_balance_answer_is_an_error_that_says_so() {
    let (url, mut sent) = hostile_server(Answer::Huge(HUGE), Answer::Small).await;

    let error = racebank_load::run(opts(&url, &["-n", "1"]))
        .await
        .expect_err("no balance can be read");

    let message = format!("{error:#}");
    assert!(
        message.contains("answered a body larger than 64 KiB"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    let written = sent.recv().await.expect("the server reports the answer");
    assert!(
        written < 64 * 1024 * 1024,
        "the client read on: {written} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balance_read_gives_up_after_the_timeout_given() {
    let (url, _sent) = hostile_server(Answer::Silence, Answer::Small).await;

    let error = racebank_load::run(opts(&url, &["-n", "1", "--timeout", "300ms"]))
        .await
        .expect_err("the server never answers");

    let message = format!("{error:#}");
    assert!(message.contains("did not answer within 300ms"), "{message}");
}

#[tokio::test]
async fn a_closed_stderr_pipe_does_not_turn_an_error_into_a_panic() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    // Nobody will read what the binary writes to stderr: each write fails with EPIPE.
    drop(reader);

    let status = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["--url", "http://127.0.0.1:1", "-n", "10"])
            .stderr(writer)
            .status()
    })
    .await
    .expect("join")
    .expect("the binary runs");

    assert_eq!(status.code(), Some(2), "a usage error, not a panic (101)");
}
