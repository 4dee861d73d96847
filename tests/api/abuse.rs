//! A server that holds under abuse: slow, silent, idle and greedy clients are cut off, and the
//! others are still served.
//!
//! The timeouts are set to a few hundred milliseconds here so the tests run fast; the defaults are
//! seconds (docs/hardening.md). Every wait below is a bound against hanging, not a speed target.

use std::time::Duration;

use racebank::{AccountConfig, Config, ServerConfig};
use reqwest::StatusCode;

use crate::helpers::{spawn_with, TestApp};
use crate::raw::{Outcome, Raw, PATIENCE};

const SHORT: Duration = Duration::from_millis(300);

/// A server in mutex mode whose header and body timeouts are `SHORT`.
async fn impatient_app() -> TestApp {
    spawn_with(Config {
        account: AccountConfig::memory("mutex".parse().unwrap(), "none".parse().unwrap()),
        server: ServerConfig {
            header_timeout: SHORT,
            body_timeout: SHORT,
            ..ServerConfig::default()
        },
    })
    .await
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout() {
    let app = impatient_app().await;
    let mut silent = Raw::connect(&app).await;

    assert_eq!(silent.outcome(PATIENCE).await, Outcome::Closed);
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off_after_the_header_timeout() {
    let app = impatient_app().await;
    let mut slow = Raw::connect(&app).await;
    slow.send(b"POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n")
        .await;

    assert_eq!(slow.outcome(PATIENCE).await, Outcome::Closed);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_head_trickled_a_line_at_a_time_is_cut_off_though_bytes_keep_arriving() {
    let app = impatient_app().await;
    let mut trickle = Raw::connect(&app).await;
    trickle
        .send(b"POST /deposit HTTP/1.1\r\nHost: localhost\r\n")
        .await;

    // A header line every 100 ms, a third of the timeout: the head never completes, so the
    // connection must be closed within two timeouts however steadily bytes arrive. 100 lines
    // (10 s) is the bound against hanging, not the expectation.
    let mut outcome = Outcome::Silent;
    for line in 0..100 {
        trickle
            .send(format!("X-Slow-{line}: 1\r\n").as_bytes())
            .await;
        outcome = trickle.outcome(Duration::from_millis(100)).await;
        if outcome != Outcome::Silent {
            break;
        }
    }

    assert_eq!(outcome, Outcome::Closed);
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = impatient_app().await;
    let mut idle = Raw::connect(&app).await;
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert_eq!(idle.outcome(PATIENCE).await.status(), Some(200));

    assert_eq!(idle.outcome(PATIENCE).await, Outcome::Closed);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_changes_nothing() {
    let app = impatient_app().await;
    let before = app.stats().await;
    let mut stalled = Raw::connect(&app).await;
    stalled
        .send(
            b"POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 13\r\n\r\n{",
        )
        .await;

    let answer = stalled.outcome(PATIENCE).await;

    assert_eq!(answer.status(), Some(408), "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["type"], "urn:racebank:problem:body-timeout");
    assert_eq!(stalled.outcome(PATIENCE).await, Outcome::Closed);
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn a_64_kib_header_is_refused_with_431_and_the_server_stays_healthy() {
    let app = impatient_app().await;
    let mut greedy = Raw::connect(&app).await;
    let padding = "x".repeat(64 * 1024);
    greedy
        .send(
            format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {padding}\r\n\r\n")
                .as_bytes(),
        )
        .await;

    let answer = greedy.outcome(PATIENCE).await;

    // The server may close before the client has read its 431 (a reset drops it): either way the
    // request is not served.
    assert!(
        answer.status() == Some(431) || answer == Outcome::Closed,
        "{answer:?}"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Busy connections are not cut for a newcomer: it waits until one has answered (an idle one
/// would be asked to make room at once, `fairness.rs`).
#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    let app = spawn_with(Config {
        account: AccountConfig::memory("unguarded".parse().unwrap(), "1500ms".parse().unwrap()),
        server: ServerConfig {
            max_connections: 2,
            ..ServerConfig::default()
        },
    })
    .await;
    let body = r#"{"amount": 5}"#;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = Raw::connect(&app).await;
        connection
            .send(
                format!(
                    "POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        held.push(connection);
    }

    let mut third = Raw::connect(&app).await;
    third
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert_eq!(
        third.outcome(Duration::from_millis(500)).await,
        Outcome::Silent,
        "a third connection is not served while two are open"
    );

    assert_eq!(third.outcome(PATIENCE).await.status(), Some(200));
    for mut connection in held {
        assert_eq!(connection.outcome(PATIENCE).await.status(), Some(200));
    }
}

#[tokio::test]
async fn a_request_that_works_longer_than_the_header_timeout_is_not_cut_off() {
    let app = spawn_with(Config {
        account: AccountConfig::memory("mutex".parse().unwrap(), "800ms".parse().unwrap()),
        server: ServerConfig {
            header_timeout: SHORT,
            body_timeout: SHORT,
            ..ServerConfig::default()
        },
    })
    .await;

    // 800 ms of work spans two of the watchdog's 300 ms looks: a request in flight is never
    // taken for a connection waiting for its head.
    let answer = app.deposit(5).await;

    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(app.balance().await, 5);
}
