//! The Host check against DNS rebinding: a page on `evil.example` whose name an attacker points at
//! 127.0.0.1 reaches this server with `Host: evil.example`, and is refused before any route runs.
//! Ports in `Host` are ignored: the name is what a rebinding attack cannot fake.

use racebank::{Config, ServerConfig};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_with, TestApp};
use crate::raw::{Outcome, Raw, PATIENCE};

/// Sends `method path` with `Host: host` (and a deposit's body for a POST) on a new connection.
async fn with_host(app: &TestApp, method: &str, path: &str, host: &str) -> Outcome {
    let body = r#"{"amount": 5}"#;
    let mut connection = Raw::connect(app).await;
    connection
        .send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    connection.outcome(PATIENCE).await
}

#[tokio::test]
async fn a_request_naming_another_host_gets_421_before_any_route_runs_and_is_counted() {
    let app = spawn_app("mutex", "none").await;
    let before = app.stats().await;

    for host in [
        "evil.example",
        "evil.example:3000",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "[::2]",
        "10.0.0.1",
        "",
        "localhost:notaport",
    ] {
        for (method, path) in [("POST", "/deposit"), ("POST", "/reset"), ("GET", "/stats")] {
            let answer = with_host(&app, method, path, host).await;

            assert_eq!(answer.status(), Some(421), "{host:?} {path}: {answer:?}");
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/problem+json"),
                "{host:?}"
            );
            assert_eq!(
                answer.json()["type"],
                "urn:racebank:problem:misdirected-request",
                "{host:?}"
            );
        }
    }

    assert_eq!(app.stats().await, before, "nothing changed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"racebank_http_requests_total{route="deposit",status="421"} 8"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn loopback_hosts_and_the_bound_address_are_served_whatever_the_port() {
    let app = spawn_app("mutex", "none").await;
    let bound = app.address.trim_start_matches("http://").to_string();

    for host in [
        bound.as_str(),
        "127.0.0.1",
        "127.0.0.1:1",
        "127.4.5.6:8080",
        "localhost",
        "LocalHost:3000",
        "[::1]",
        "[::1]:3000",
    ] {
        let answer = with_host(&app, "GET", "/healthz", host).await;

        assert_eq!(answer.status(), Some(200), "{host:?}: {answer:?}");
    }
}

#[tokio::test]
async fn a_host_allowed_by_the_flag_is_served_and_others_are_not() {
    let app = spawn_with(Config {
        server: ServerConfig {
            allowed_hosts: vec!["bank.internal".to_string()],
            ..ServerConfig::default()
        },
        ..Config::default()
    })
    .await;

    for (host, status) in [
        ("bank.internal", 200),
        ("Bank.Internal:8443", 200),
        ("other.internal", 421),
    ] {
        let answer = with_host(&app, "GET", "/healthz", host).await;

        assert_eq!(answer.status(), Some(status), "{host:?}: {answer:?}");
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}
