//! Shutdown and cancellation: in-flight requests finish, dropped requests leave no half-write.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{amount_body, assert_ledger_explains_balance, spawn_app};

#[tokio::test]
async fn shutdown_under_load_finishes_the_requests_in_flight() {
    // Two seconds of work, and the stop comes half a second in: wide margins, so that a slow CI
    // machine still has every request inside its work when the stop arrives.
    let app = spawn_app("unguarded", "2s").await;

    // Stop while a batch of deposits is inside its work.
    let client = app.client.clone();
    let url = format!("{}/deposit", app.address);
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(amount_body(5));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = app.shutdown().await;

    for request in in_flight {
        let status = request
            .await
            .unwrap()
            .expect("in-flight requests are answered");
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        stats.deposit_count, 20,
        "every acknowledged deposit is in the final stats"
    );
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn a_client_that_gives_up_mid_request_leaves_the_ledger_consistent() {
    let app = spawn_app("unguarded", "200ms").await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();

    for _ in 0..5 {
        let result = impatient
            .post(format!("{}/deposit", app.address))
            .header("content-type", "application/json")
            .body(amount_body(5))
            .send()
            .await;
        assert!(
            result.is_err(),
            "the client times out before the 200 ms of work end"
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Whether hyper dropped each handler or let it finish, write and record went together.
    let stats = app.stats().await;
    assert_eq!(
        i128::from(stats.balance),
        5 * i128::from(stats.deposit_count)
    );
    assert_ledger_explains_balance(&stats);
}

#[tokio::test]
async fn shutdown_stops_waiting_for_requests_that_outlast_the_grace_period() {
    let app = crate::helpers::spawn_with(racebank::Config {
        account: racebank::AccountConfig {
            work: "30s".parse().unwrap(),
            ..racebank::AccountConfig::default()
        },
        server: racebank::ServerConfig {
            shutdown_grace: Duration::from_millis(200),
            ..racebank::ServerConfig::default()
        },
    })
    .await;
    let stuck = {
        let request = app
            .client
            .post(format!("{}/deposit", app.address))
            .header("content-type", "application/json")
            .body(amount_body(5));
        tokio::spawn(request.send())
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = std::time::Instant::now();
    let stats = app.shutdown().await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.deposit_count, 0, "the stopped request wrote nothing");
    assert_eq!(stats.balance, 0);
    let answer = stuck.await.unwrap().expect("the stuck request is answered");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
}
