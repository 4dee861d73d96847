//! Fair connections: clients that hold connections (trickling, idle keep-alive, live-page viewers)
//! cannot keep a newcomer out, and a limit of connections loses no request to the backlog.
//!
//! Every wait is a bound against hanging, not a speed target: the bounds are several times what
//! the server needs on a loaded machine, and without the fairness they would be exceeded by tens of
//! seconds (the newcomer waits for a header timeout, or forever).

use std::time::Duration;

use futures::future::join_all;
use racebank::{AccountConfig, Config, ServerConfig};
use reqwest::StatusCode;
use tokio::io::AsyncReadExt;

use crate::helpers::{amount_body, spawn_with, TestApp};
use crate::raw::{Outcome, Raw, PATIENCE};

/// How long a legitimate request may take to be answered while others hold connections: a bound,
/// far above the milliseconds it takes.
const FAIR: Duration = Duration::from_secs(10);

/// Fails the test with one line when this process may not open `needed` more files.
fn check_file_limit(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= needed + 256,
            "this test opens {needed} sockets; raise `ulimit -n` (now {soft}) and run it again"
        );
    }
}

/// A server with `server`'s limits, in mutex mode doing no work.
async fn app_with(server: ServerConfig) -> TestApp {
    spawn_with(Config {
        account: AccountConfig::memory("mutex".parse().unwrap(), "none".parse().unwrap()),
        server,
    })
    .await
}

/// A fresh client, so that its request comes on a new connection.
async fn legitimate_balance(app: &TestApp) -> StatusCode {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let request = client.get(format!("{}/balance", app.address)).send();
    tokio::time::timeout(FAIR, request)
        .await
        .expect("a legitimate request is answered while others hold connections")
        .expect("the server answers")
        .status()
}

#[tokio::test]
async fn a_legitimate_request_is_answered_while_512_trickling_connections_hold_every_slot() {
    check_file_limit(2 * 513);
    // A header timeout of a minute: a trickler that sends a request every 8 s is never cut by it.
    let app = app_with(ServerConfig {
        max_connections: 512,
        header_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let mut tricklers = Vec::new();
    for _ in 0..512 {
        let mut trickler = Raw::connect(&app).await;
        trickler
            .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        assert_eq!(trickler.outcome(PATIENCE).await.status(), Some(200));
        tricklers.push(trickler);
    }

    assert_eq!(legitimate_balance(&app).await, StatusCode::OK);
}

#[tokio::test]
async fn a_legitimate_request_is_answered_while_1000_viewers_are_connected() {
    check_file_limit(2 * 1001);
    let app = app_with(ServerConfig::default()).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let viewers = (0..1000).map(|_| {
        let address = address.clone();
        tokio::spawn(async move {
            let mut viewer = tokio::net::TcpStream::connect(address).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(
                &mut viewer,
                b"GET /live/events HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .await
            .unwrap();
            // The head of the answer: a stream (200) or a refusal (503).
            let mut head = Vec::new();
            let read_head = async {
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match viewer.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => head.extend_from_slice(&chunk[..read]),
                    }
                }
            };
            let _ = tokio::time::timeout(PATIENCE, read_head).await;
            let head = String::from_utf8_lossy(&head).to_string();
            (viewer, head)
        })
    });
    let viewers: Vec<_> = tokio::time::timeout(Duration::from_secs(15), join_all(viewers))
        .await
        .expect("1000 viewers connect within 15 s")
        .into_iter()
        .map(Result::unwrap)
        .collect();

    assert_eq!(legitimate_balance(&app).await, StatusCode::OK);
    let streams = viewers
        .iter()
        .filter(|(_, head)| head.starts_with("HTTP/1.1 200"))
        .count();
    let refused: Vec<_> = viewers
        .iter()
        .filter(|(_, head)| head.starts_with("HTTP/1.1 503"))
        .collect();
    assert_eq!(streams, 100, "--max-viewers is 100 by default");
    assert_eq!(refused.len(), 900);
    // (The problem's type is checked in the test of --max-viewers below, which reads whole answers.)
    for (_, head) in refused {
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 1"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn an_event_stream_outlives_two_header_timeouts_and_receives_keep_alive_comments() {
    let app = app_with(ServerConfig {
        header_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await;
    let address = app.address.trim_start_matches("http://");
    let mut viewer = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut viewer,
        b"GET /live/events HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();

    // Three seconds: past the two header timeouts after which the watchdog closes a connection
    // it takes for idle.
    let mut received = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut closed = false;
    while tokio::time::Instant::now() < until {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(until, viewer.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
            Err(_) => break,
        }
    }

    let received = String::from_utf8_lossy(&received);
    assert!(!closed, "the stream was cut: {received}");
    assert!(received.contains(": keep-alive\n\n"), "{received}");
}

#[tokio::test]
async fn event_streams_beyond_max_viewers_get_503_and_streams_hold_no_connection_slot() {
    let app = app_with(ServerConfig {
        max_connections: 2,
        max_viewers: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut viewer = Raw::connect(&app).await;
        viewer
            .send(b"GET /live/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        streams.push(viewer);
    }
    // Three streams on a server of two connection slots: the stats still come.
    assert_eq!(legitimate_balance(&app).await, StatusCode::OK);

    let mut fourth = Raw::connect(&app).await;
    fourth
        .send(b"GET /live/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let answer = fourth.outcome(PATIENCE).await;

    assert_eq!(answer.status(), Some(503), "{answer:?}");
    assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        answer.json()["type"],
        "urn:racebank:problem:too-many-viewers"
    );
}

#[tokio::test]
async fn twenty_connections_serve_64_keep_alive_clients_without_losing_a_request() {
    let app = app_with(ServerConfig {
        max_connections: 20,
        ..ServerConfig::default()
    })
    .await;

    // Each client keeps its connection alive between its 20 deposits, gives each 10 s, and keeps
    // its (idle) connection until every client is done, as a load generator's workers do.
    let clients = (0..64).map(|_| {
        let url = format!("{}/deposit", app.address);
        async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut failures = Vec::new();
            for _ in 0..20 {
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(amount_body(1))
                    .send()
                    .await;
                match sent {
                    Ok(answer) if answer.status() == StatusCode::OK => {}
                    Ok(answer) => failures.push(answer.status().to_string()),
                    Err(error) => failures.push(format!("{error:?}")),
                }
            }
            (client, failures)
        }
    });
    let (_clients, failures): (Vec<_>, Vec<_>) = join_all(clients).await.into_iter().unzip();
    let failures: Vec<String> = failures.into_iter().flatten().collect();

    assert!(
        failures.is_empty(),
        "{} lost: {failures:#?}",
        failures.len()
    );
    assert_eq!(app.balance().await, 64 * 20);
}

#[tokio::test]
async fn a_connection_closes_politely_after_its_last_allowed_request() {
    let app = app_with(ServerConfig {
        max_requests_per_connection: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut connection = Raw::connect(&app).await;

    let mut answers = Vec::new();
    for _ in 0..3 {
        connection
            .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        answers.push(connection.outcome(PATIENCE).await);
    }

    assert_eq!(answers[0].header("connection"), None);
    assert_eq!(answers[2].status(), Some(200));
    assert_eq!(answers[2].header("connection").as_deref(), Some("close"));
    assert_eq!(connection.outcome(PATIENCE).await, Outcome::Closed);
}

#[tokio::test]
async fn a_connection_older_than_its_maximum_age_is_closed_once_idle() {
    let app = app_with(ServerConfig {
        header_timeout: Duration::from_secs(60),
        max_connection_age: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    let mut connection = Raw::connect(&app).await;
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert_eq!(connection.outcome(PATIENCE).await.status(), Some(200));

    // The header timeout is a minute: only the age can close it within PATIENCE.
    assert_eq!(connection.outcome(PATIENCE).await, Outcome::Closed);
}
