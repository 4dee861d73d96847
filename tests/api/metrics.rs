//! `GET /metrics`: every count exact after a known sequence of requests.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

/// The value of the sample `name{labels}` in a scrape, if present.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn a_scrape_counts_every_answer_by_route_status_and_outcome_exactly() {
    // Two unguarded deposits that meet in the window: exactly one lost update.
    let app = spawn_app("unguarded", "rendezvous:2").await;
    let (first, second) = tokio::join!(app.deposit(5), app.deposit(7));
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    app.reset(0).await;
    let app_stats_after_reset = app.stats().await;
    assert_eq!(app_stats_after_reset.lost_updates, 0);
    // Now a known mix, one at a time.
    let (a, b) = tokio::join!(app.deposit(10), app.deposit(20));
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let refused = app.withdraw(1_000_000).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let invalid = app
        .post_raw("/withdraw", Some("application/json"), r#"{"amount":-1}"#)
        .await;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let untyped = app.post_raw("/deposit", None, r#"{"amount":1}"#).await;
    assert_eq!(untyped.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.get("/nope").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/deposit").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    app.balance().await;
    app.balance().await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let scrape = response.text().await.unwrap();
    let expected = [
        // Four deposits answered 200 (two before the reset), one 415, one 405.
        (
            r#"racebank_http_requests_total{route="deposit",status="200"}"#,
            4.0,
        ),
        (
            r#"racebank_http_requests_total{route="deposit",status="415"}"#,
            1.0,
        ),
        (
            r#"racebank_http_requests_total{route="deposit",status="405"}"#,
            1.0,
        ),
        (
            r#"racebank_http_requests_total{route="withdraw",status="409"}"#,
            1.0,
        ),
        (
            r#"racebank_http_requests_total{route="withdraw",status="422"}"#,
            1.0,
        ),
        (
            r#"racebank_http_requests_total{route="balance",status="200"}"#,
            2.0,
        ),
        (
            r#"racebank_http_requests_total{route="reset",status="200"}"#,
            1.0,
        ),
        // The test's one read of /stats (the reset's answer is counted under reset).
        (
            r#"racebank_http_requests_total{route="stats",status="200"}"#,
            1.0,
        ),
        (
            r#"racebank_http_requests_total{route="other",status="404"}"#,
            1.0,
        ),
        (
            r#"racebank_operations_total{op="deposit",outcome="applied"}"#,
            4.0,
        ),
        (
            r#"racebank_operations_total{op="deposit",outcome="not_applied"}"#,
            2.0,
        ),
        (
            r#"racebank_operations_total{op="deposit",outcome="refused"}"#,
            0.0,
        ),
        (
            r#"racebank_operations_total{op="withdraw",outcome="applied"}"#,
            0.0,
        ),
        (
            r#"racebank_operations_total{op="withdraw",outcome="refused"}"#,
            1.0,
        ),
        (
            r#"racebank_operations_total{op="withdraw",outcome="not_applied"}"#,
            1.0,
        ),
        (
            r#"racebank_operations_total{op="withdraw",outcome="unknown"}"#,
            0.0,
        ),
        // Every answer to /deposit and /withdraw is timed, whatever its status.
        (
            r#"racebank_operation_duration_seconds_count{op="deposit"}"#,
            6.0,
        ),
        (
            r#"racebank_operation_duration_seconds_bucket{le="+Inf",op="deposit"}"#,
            6.0,
        ),
        (
            r#"racebank_operation_duration_seconds_count{op="withdraw"}"#,
            2.0,
        ),
        // The ledger's, read at the scrape: the second pair met in the window too.
        ("racebank_lost_updates_total", 1.0),
        ("racebank_retries_total", 0.0),
        ("racebank_expected_balance_minor_units", 30.0),
    ];
    for (series, value) in expected {
        assert_eq!(
            sample(&scrape, series),
            Some(value),
            "{series} in\n{scrape}"
        );
    }
    // Which of the pair wrote last is the race's choice; the erased one is the missing money.
    let balance = sample(&scrape, "racebank_balance_minor_units").unwrap();
    let removed = sample(&scrape, "racebank_lost_removed_minor_units_total").unwrap();
    assert!(balance == 10.0 || balance == 20.0, "{scrape}");
    assert_eq!(balance + removed, 30.0, "{scrape}");
    // Counted after its answer is written: this scrape is not in itself.
    assert_eq!(
        sample(
            &scrape,
            r#"racebank_http_requests_total{route="metrics",status="200"}"#
        ),
        None
    );
    let again = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(
            &again,
            r#"racebank_http_requests_total{route="metrics",status="200"}"#
        ),
        Some(1.0)
    );
}
